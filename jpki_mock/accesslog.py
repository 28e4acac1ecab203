"""The access log: one line per request on stderr, as text or JSON (docs/configuration.md, "Logs").

Each line has the time the answer was sent (UTC, milliseconds), the method, the path (with its
query), the HTTP status, the body's length in octets and how long the request took in
milliseconds; an OCSP answer adds its label (``good``, ``revoked``, ``unknown``, or the
response status: ``malformedRequest``, ``unauthorized``, ``tryLater``, ``internalError``), and a
refused request the reason, so that a client holding a 5-octet malformedRequest answer can see
which field was wrong::

    2026-12-04T08:40:01.123Z GET /ocsp/MEMwQTA/MD0wOzAJBgUrDgMCGgUABBS... 200 1523 0.062ms ocsp=good
    2026-12-04T08:40:01.456Z POST /ocsp 400 5 0.210ms ocsp=malformedRequest reason="request: not a DER ..."
    {"time":"2026-12-04T08:40:01.123Z","method":"GET","path":"/ocsp/MEMw...","status":200,"bytes":1523,"ms":0.062,"ocsp":"good"}

A text line's path is bare unless it holds a space, a quote or a control character; then it is
a JSON string, as the reason always is.  The parts say what they know through the WSGI environ
(:data:`LABEL`, :data:`REASON`); the servers write the lines (:meth:`AccessLog.wrap` for granian's
WSGI interface, :class:`jpki_mock.rsgi.RsgiBridge` for its RSGI one).

The cached OCSP answer costs about a microsecond of Python, so the line is cheap on purpose: the
time stamp is formatted once per millisecond, a path's logged form once per path, the line is
one f-string, and lines are written in batches (:class:`Writer`), never one write(2) per
request.  To a pipe, each write is whole lines of at most :data:`CHUNK` octets (PIPE_BUF), so
that the lines of several worker processes sharing it never interleave mid-line (POSIX
write(2): writes of at most PIPE_BUF octets to a pipe are atomic).
"""

from __future__ import annotations

import atexit
import json
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

#: environ key where the OCSP responder puts the answer's label
LABEL = "jpki_mock.ocsp"
#: environ key where a part puts why it refused a request (one line of text)
REASON = "jpki_mock.reason"
#: longest path logged (an OCSP GET path is about 100 characters; a client may send 64 KiB)
MAX_PATH = 1024
MAX_REASON = 500
#: octets per write(2): at most PIPE_BUF (4096 on Linux, at least 512 by POSIX), whole lines
CHUNK = 4096
_PLAIN_METHODS = frozenset({"GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: what a bare text path may hold: printable ASCII but the space, the quote and the backslash
_SAFE = bytes(b for b in range(0x21, 0x7F) if b not in b'"\\')

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Format = Literal["text", "json"]


class Writer:
    """Lines to a file descriptor (2: stderr), in batches: the request that queues the
    :attr:`BATCH`-th waiting line writes them all; a background thread writes what waited
    :attr:`INTERVAL` seconds with no batch written (a quiet server's last lines)."""

    #: lines per write by a request thread (one write(2) per BATCH lines, none per line)
    BATCH = 64
    #: the longest a line waits
    INTERVAL = 0.05

    def __init__(self, fd: int = 2):
        self.fd = fd
        # deque: append and popleft are atomic, so request threads and the flusher share it
        # without a lock; the lock only keeps two flushes from reordering lines.
        self._pending: deque[str] = deque()
        self._lock = threading.Lock()
        self._flushed = time.monotonic()
        try:
            #: lines to a pipe go in writes of at most PIPE_BUF octets; to a file or a terminal,
            #: a batch in one write (each write(2) lets another thread take the GIL)
            self._pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
        except OSError:
            self._pipe = True
        self._start()
        # A thread does not survive fork: a forked child starts its own.
        os.register_at_fork(after_in_child=self._forked)
        atexit.register(self.flush)

    def write(self, line: str) -> None:
        pending = self._pending
        pending.append(line)
        if len(pending) >= self.BATCH:
            self.flush()

    def _start(self) -> None:
        threading.Thread(target=self._run, name="jpki-access-log", daemon=True).start()

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._pending.clear()  # the parent writes its own lines
        self._start()

    def _run(self) -> None:
        while True:
            time.sleep(self.INTERVAL)
            if self._pending and time.monotonic() - self._flushed >= self.INTERVAL:
                self.flush()

    def flush(self) -> None:
        with self._lock:
            pending = self._pending
            popleft = pending.popleft
            while pending:
                data = "".join([popleft() for _ in range(min(len(pending), 512))]).encode("utf-8", "backslashreplace")
                if not self._pipe:
                    self._out(data)
                    continue
                total = len(data)
                start = 0
                while start < total:
                    # whole lines, at most CHUNK octets per write (a longer line goes alone)
                    end = total if total - start <= CHUNK else data.rfind(b"\n", start, start + CHUNK) + 1
                    if end <= start:
                        end = data.find(b"\n", start + CHUNK) + 1 or total
                    self._out(data[start:end])
                    start = end
            self._flushed = time.monotonic()

    def _out(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            # stderr closed or broken: the log is lost, the requests are still answered
            pass


Line = Callable[[dict[str, Any], str, str, int, float], str]


class AccessLog:
    """Formats and writes the lines; :meth:`wrap` puts it in front of a WSGI app."""

    #: distinct paths whose logged form is remembered (an OCSP client asks about the same
    #: certificates again and again; checking a path costs a third of a cached answer)
    MAX_PATHS = 10_000

    def __init__(self, fmt: Format = "text", writer: Writer | None = None):
        self.format = fmt
        self.writer = writer or Writer()
        #: [(millisecond, its time stamp)]: formatted once per millisecond
        self._stamp: list[tuple[int, str]] = [(-1, "")]
        #: (second, its text)
        self._second: tuple[int, str] = (-1, "")
        self._paths: dict[str, str] = {}
        #: ``line(environ, path, status, octets, start)``: one line, its newline included
        self.line: Line = self._json_line() if fmt == "json" else self._text_line()

    def stamp(self, now: float) -> str:
        """``now`` (time.time()) as RFC 3339 UTC with milliseconds."""
        ms = int(now * 1000)
        cached = self._stamp[0]  # one tuple: a thread never pairs one millisecond with another's text
        return cached[1] if cached[0] == ms else self._new_stamp(ms)

    def _new_stamp(self, ms: int) -> str:
        sec, frac = divmod(ms, 1000)
        second = self._second
        if second[0] != sec:
            second = self._second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
        text = f"{second[1]}.{frac:03d}Z"
        self._stamp[0] = (ms, text)
        return text

    def _new_path(self, path: str) -> str:
        if self.format == "text" and len(path) <= MAX_PATH and path.isascii() \
                and not path.encode("ascii").translate(None, _SAFE):
            logged = path
        else:
            logged = _json_string(path)  # a JSON string: spaces, quotes and controls escaped
        if len(self._paths) >= self.MAX_PATHS:
            self._paths.clear()
        self._paths[path] = logged
        return logged

    # The two formatters are closures over their parts (the per-millisecond time stamp, the
    # logged form of each path): a cached OCSP answer costs well under a microsecond of Python,
    # and attribute look-ups and calls would cost as much as the line.
    def _text_line(self) -> Line:
        clock, cell, new_stamp, paths, new_path, plain = (time.time, self._stamp, self._new_stamp, self._paths,
                                                         self._new_path, _PLAIN_METHODS)
        #: label -> its part of the line
        labels: dict[str | None, str] = {None: ""}

        def line(environ: dict[str, Any], path: str, status: str, size: int, start: float) -> str:
            now = clock()
            ms = int(now * 1000)
            stamp = cell[0]
            method = environ.get("REQUEST_METHOD", "-")
            label = environ.get(LABEL)
            part = labels.get(label)
            if part is None:
                part = f" ocsp={label}"
                if len(labels) < 100:  # the labels are few (ocsp.stats.STATUSES and their lists)
                    labels[label] = part
            reason = environ.get(REASON)
            return (f"{stamp[1] if stamp[0] == ms else new_stamp(ms)} "
                    f"{method if method in plain else _json_string(method, 32)} {paths.get(path) or new_path(path)} "
                    f"{status[:3]} {size} {int((now - start) * 1e6)}us{part}"
                    f"{'' if reason is None else ' reason=' + _json_string(reason, MAX_REASON)}\n")

        return line

    def _json_line(self) -> Line:
        clock, cell, new_stamp, paths, new_path, plain = (time.time, self._stamp, self._new_stamp, self._paths,
                                                         self._new_path, _PLAIN_METHODS)

        def line(environ: dict[str, Any], path: str, status: str, size: int, start: float) -> str:
            now = clock()
            ms = int(now * 1000)
            stamp = cell[0]
            method = environ.get("REQUEST_METHOD", "-")
            method = f'"{method}"' if method in plain else _json_string(method, 32)
            label = environ.get(LABEL)
            reason = environ.get(REASON)
            text = (f'{{"time":"{stamp[1] if stamp[0] == ms else new_stamp(ms)}","method":{method},'
                    f'"path":{paths.get(path) or new_path(path)},"status":{status[:3]},"bytes":{size},'
                    f'"duration_us":{int((now - start) * 1e6)}')
            if label is not None:
                text = f'{text},"ocsp":"{label}"'
            return f"{text}}}\n" if reason is None else f'{text},"reason":{_json_string(reason, MAX_REASON)}}}\n'

        return line

    def request(self, environ: dict[str, Any], path: str, status: int | str, size: int, start: float) -> None:
        """Log one answered request: ``path`` as received (before any prefix routing) with its
        query, ``start`` the time.time() of its arrival."""
        self.writer.write(self.line(environ, path, str(status), size, start))

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """``app`` with a line per request (granian's WSGI interface)."""
        clock = time.time
        write = self.writer.write
        line = self.line

        def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            start = clock()
            path = environ.get("PATH_INFO", "")
            query = environ.get("QUERY_STRING")
            if query:
                path = f"{path}?{query}"
            status = ["500"]

            def started(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                status[0] = line
                return start_response(line, headers, exc_info)

            try:
                result = app(environ, started)
            except BaseException:
                write(line(environ, path, "500", 0, start))
                raise
            if result.__class__ is list:
                write(line(environ, path, status[0], len(result[0]) if len(result) == 1 else sum(map(len, result)),
                           start))
                return result
            return _Counted(result, lambda size: write(line(environ, path, status[0], size, start)))

        return logged


class _Counted:
    """A lazy WSGI body (a CRL stream, a Flask response) that logs its line once closed."""

    def __init__(self, result: Iterable[bytes], done: Callable[[int], None]):
        self._result = result
        self._done: Callable[[int], None] | None = done
        self._size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            self._size += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done(self._size)


def _json_string(value: Any, limit: int = MAX_PATH) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    # ASCII only: a C1 control or a line separator from a client must not break the line
    return json.dumps(text)


def from_settings(enabled: bool, fmt: Format) -> AccessLog | None:
    """The servers' access log (``log.access``, ``log.format``), or None when it is off."""
    return AccessLog(fmt) if enabled else None
