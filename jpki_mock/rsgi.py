"""Serve a WSGI app under granian's RSGI interface, with every request body read before the app runs.

Granian's WSGI interface hands the app a ``wsgi.input`` that reads the body from the socket as
the app asks for it, on the app's own thread, with no time limit: a client that sends a POST
body one byte a second held that thread for as long as it liked, and as many such clients as
threads stopped the responder (docs/ocsp.md, "Slow clients").  Here granian's event loop reads
the body instead, asynchronously, so a slow client costs a suspended coroutine and no thread;
the body is capped (``max_bytes``) and must arrive within a deadline (``timeout``).  Only then
does the WSGI app run, on the loop's thread when there is one app thread (no hand-off: the
cached OCSP answer costs microseconds) or on a pool of ``threads`` threads otherwise, with a
``wsgi.input`` that is an in-memory buffer.

A body that missed its deadline reaches the app as a ``wsgi.input`` whose reads raise
:class:`BodyTimeout`, a 408 (RFC 9110 section 15.5.9): the OCSP edge answers malformedRequest
with it, Flask's error handler JSON.  The answer then closes the connection (RFC 9110 section
15.5.9: the rest of the body would otherwise be read as the next request), as does an answer to
a body over the cap, which is left unread.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from granian._granian import RSGIProtocolClosed as ProtocolClosed  # granian.rsgi re-exports it untyped
from werkzeug.exceptions import RequestTimeout

from jpki_mock.accesslog import REASON, AccessLog

log = logging.getLogger("jpki_mock.rsgi")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: methods whose requests carry a body only when a header announces one (RFC 9112 section 6.3)
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
_CLOSE = ("connection", "close")
_PLAIN = [("content-type", "text/plain; charset=utf-8")]
#: how often body deadlines are checked (so a deadline holds to within this)
SWEEP_SECONDS = 0.1
_PROTOCOLS = {"1.1": "HTTP/1.1", "1": "HTTP/1.0", "1.0": "HTTP/1.0", "2": "HTTP/2"}
#: header name (RSGI gives it in lower case) -> environ key; Content-Type and Content-Length have
#: keys of their own (PEP 3333)
_KEYS: dict[str, str] = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


class BodyTimeout(RequestTimeout):
    """The request body did not arrive within its deadline (HTTP 408)."""

    description = "The request body did not arrive in time; send it at once, on a new connection."


@dataclass(frozen=True)
class BodyLimits:
    """What a request body may be: at most ``max_bytes`` octets, complete within ``timeout`` seconds."""

    max_bytes: int
    timeout: float


class _Expired(io.RawIOBase):
    """``wsgi.input`` of a body that missed its deadline: every read raises :class:`BodyTimeout`."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        raise BodyTimeout()

    def readinto(self, buffer: Any) -> int:
        raise BodyTimeout()

    def readline(self, size: int | None = -1) -> bytes:
        raise BodyTimeout()


class _Started:
    """The WSGI ``start_response`` of one request: keeps the status code and headers."""

    __slots__ = ("headers", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.status = int(status[:3])
        self.headers = headers


class RsgiBridge:
    """An RSGI application (granian ``Interfaces.RSGI``) running a WSGI ``app``.

    ``limits(path)`` gives the body limits of a request path (the combined server's OCSP and
    admin paths differ); ``threads`` is how many WSGI calls may run at once (1: on the loop);
    with more, ``inline(path)`` still runs the paths it names on the loop: handing a request to
    a pool thread and back costs more CPU than a cached OCSP answer itself (docs/ocsp.md).
    ``access``: the access log (jpki_mock.accesslog), whose durations here include the body's
    arrival."""

    def __init__(self, app: WSGIApp, limits: Callable[[str], BodyLimits], threads: int = 1,
                 inline: Callable[[str], bool] | None = None, access: AccessLog | None = None):
        self.app = app
        self.access = access
        self.limits = limits
        self.threads = threads
        self.inline = inline
        self.pool: ThreadPoolExecutor | None = None
        #: body reads in progress -> their deadline (loop time); those _sweep cancelled
        self._waiting: dict[asyncio.Task[Any], float] = {}
        self._late: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        #: self.base with the server's name and port, per listening address (one, in practice)
        self._bases: dict[str, dict[str, Any]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        # PEP 3333's fixed keys, as granian's WSGI interface sets them.
        self.base: dict[str, Any] = {
            "SCRIPT_NAME": "", "SERVER_SOFTWARE": "granian", "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
            # the whole body is in memory: a reader may read to its end (werkzeug honours this)
            "wsgi.input_terminated": True, "wsgi.multiprocess": False, "wsgi.multithread": threads > 1,
            "wsgi.run_once": False,
        }

    # granian calls these two when the worker's loop starts and stops
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        if self.threads > 1:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="wsgi")

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        access = self.access
        start = time.time() if access is not None else 0.0
        environ = self.environ(scope)
        close = False
        method = environ["REQUEST_METHOD"]
        length_header = environ.get("CONTENT_LENGTH")
        if method in _BODYLESS and length_header is None and "HTTP_TRANSFER_ENCODING" not in environ:
            environ["wsgi.input"] = io.BytesIO(b"")
        else:
            limits = self.limits(environ["PATH_INFO"])
            try:
                length = int(length_header) if length_header is not None else -1
            except ValueError:
                length = -1
            if length > limits.max_bytes:
                # The app refuses it by its header (413); reading it would only cost time.
                environ["wsgi.input"], close = io.BytesIO(b""), True
            else:
                try:
                    body = await self._read(proto, limits, length)
                except ProtocolClosed:
                    # the client went away mid-body: nobody to answer (499, as nginx logs it)
                    if access is not None:
                        environ[REASON] = "the client closed the connection before its body arrived"
                        access.request(environ, _logged_path(scope), 499, 0, start)
                    return
                if body is None:
                    environ["wsgi.input"], close = _Expired(), True
                else:
                    environ["wsgi.input"] = io.BytesIO(body)
                    # cut at the cap: the app sees more than it allows and refuses it
                    close = len(body) > limits.max_bytes
        if self.pool is None or (self.inline is not None and self.inline(environ["PATH_INFO"])):
            status, headers, out = self._call(environ)
        else:
            assert self.loop is not None
            status, headers, out = await self.loop.run_in_executor(self.pool, self._call, environ)
        if close:
            headers = [*headers, _CLOSE]
        if out.__class__ is bytes:
            proto.response_bytes(status, headers, out)
            if access is not None:
                access.request(environ, _logged_path(scope), status, len(out), start)
        else:
            size = await self._stream(proto, status, headers, out)
            if access is not None:
                access.request(environ, _logged_path(scope), status, size, start)

    def environ(self, scope: Any) -> dict[str, Any]:
        """The WSGI environ of an RSGI scope, as granian's WSGI interface builds it (PEP 3333)."""
        server = scope.server
        base = self._bases.get(server)
        if base is None:
            host, _, port = server.rpartition(":")
            base = self._bases[server] = {**self.base, "SERVER_NAME": host, "SERVER_PORT": port}
        environ = base.copy()
        environ["REQUEST_METHOD"] = scope.method
        environ["PATH_INFO"] = scope.path
        environ["QUERY_STRING"] = scope.query_string
        environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(scope.http_version) or f"HTTP/{scope.http_version}"
        environ["REMOTE_ADDR"] = scope.client.rpartition(":")[0]
        environ["wsgi.url_scheme"] = scope.scheme
        keys = _KEYS
        for name, value in scope.headers.items():
            key = keys.get(name)
            if key is None:
                key = "HTTP_" + name.upper().replace("-", "_")
                if len(keys) < 1000:  # bounded: clients choose header names
                    keys[name] = key
            # repeated fields join with commas (RFC 9110 section 5.3)
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
        return environ

    async def _read(self, proto: Any, limits: BodyLimits, length: int) -> bytes | None:
        """The body, at most one octet past the cap; None when it missed its deadline."""
        task = asyncio.current_task()
        if task is None:
            # Granian's Rust task implementation runs requests outside asyncio's tasks, and
            # delivers no cancellation to them: wait_for reads in a task of its own, which its
            # timeout can cancel (at the price of that task).
            try:
                return await asyncio.wait_for(self._receive(proto, limits.max_bytes, length), limits.timeout)
            except TimeoutError:
                return None
        # One sweep every SWEEP_SECONDS cancels the reads past their deadline: a timer per
        # request (asyncio.timeout) cost ~14 µs, as much as the rest of a cached answer.
        loop = task.get_loop()
        self._waiting[task] = loop.time() + limits.timeout
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_SECONDS, self._sweep, loop)
        try:
            return await self._receive(proto, limits.max_bytes, length)
        except asyncio.CancelledError:
            if task not in self._late:
                raise
            self._late.discard(task)
            task.uncancel()
            return None
        finally:
            self._waiting.pop(task, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[task]
                self._late.add(task)
                task.cancel()
        self._sweeper = loop.call_later(SWEEP_SECONDS, self._sweep, loop) if self._waiting else None

    @staticmethod
    async def _receive(proto: Any, cap: int, length: int) -> bytes:
        if length >= 0:
            # hyper stops at Content-Length, already checked against the cap
            return bytes(await proto())
        chunks: list[bytes] = []
        size = 0
        async for chunk in proto:
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                break
        return b"".join(chunks)[:cap + 1]

    def _call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Any]:
        """Run the WSGI app: (status, headers, bytes) or, for a lazy body, an iterator over its
        chunks (whose first chunk has been taken, so that start_response has been called)."""
        started = _Started()
        try:
            result = self.app(environ, started)
            if isinstance(result, list):
                # one chunk, as every OCSP answer: no copy
                one = result[0] if len(result) == 1 else None
                return started.status, started.headers, one if one.__class__ is bytes else b"".join(result)
            chunks = iter(result)
            first = next(chunks, b"")
        except Exception:  # the edge: a plain 500, never a dropped connection
            log.exception("request %s %s failed", environ["REQUEST_METHOD"], environ["PATH_INFO"])
            return 500, _PLAIN, b"internal error; see the server log\n"
        return started.status, started.headers, _Chunks(first, chunks, result)

    async def _stream(self, proto: Any, status: int, headers: list[tuple[str, str]], out: _Chunks) -> int:
        """Send a lazy body; returns how many octets were sent."""
        transport = proto.response_stream(status, headers)
        size = 0
        try:
            for first in out.first():
                await transport.send_bytes(first)
                size += len(first)
            while True:
                chunk: bytes | None
                if self.pool is None:
                    chunk = out.next()
                else:
                    assert self.loop is not None
                    chunk = await self.loop.run_in_executor(self.pool, out.next)
                if chunk is None:
                    break
                if chunk:
                    await transport.send_bytes(chunk)
                    size += len(chunk)
        finally:
            out.close()
        return size


def _logged_path(scope: Any) -> str:
    """The request's path as received (prefix routing rewrites the environ's), with its query."""
    query = scope.query_string
    return f"{scope.path}?{query}" if query else scope.path


class _Chunks:
    """A lazy WSGI body after its first chunk; closed as PEP 3333 asks once sent (or abandoned)."""

    def __init__(self, first: bytes, rest: Iterator[bytes], result: Iterable[bytes]):
        self._first = first
        self._rest = rest
        self._result = result

    def first(self) -> list[bytes]:
        return [self._first] if self._first else []

    def next(self) -> bytes | None:
        try:
            return next(self._rest, None)
        except Exception:  # headers are gone: cut the body short, log why
            log.exception("streaming a response body failed")
            return None

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()
