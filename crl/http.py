"""HTTP distribution of the published CRLs: a plain WSGI app mounted at ``/crl``.

Paths are exactly those of :mod:`jpki_mock.urls` (the URIs written into certificates):
``/crl/{sign|auth}/g{N}/{full|arl|<municipality>}[-delta].{crl|pem}``; ``?number=N`` serves an
archived CRL of that stream.  DER is ``application/pkix-crl`` (RFC 2585 section 4.2), PEM is
``application/x-pem-file``.  Caching follows the CRL itself: Last-Modified = thisUpdate,
Expires = nextUpdate, ``max-age`` = seconds until nextUpdate, ETag = SHA-256 of the file;
If-None-Match / If-Modified-Since answer 304.  Errors are JSON with a message saying what was
wrong and what is allowed.

Files are opened once per request and everything (headers and body) comes from that open
file, so a publication renaming a new CRL into place mid-request never mixes two CRLs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from jpki_mock import der, errors
from jpki_mock import travel as timetravel
from jpki_mock.access import AccessControl
from jpki_mock.accesslog import REASON
from jpki_mock.ca.status import Issuer
from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream, issued_at
from jpki_mock.db import outage_reason
from jpki_mock.vocab import KINDS
from jpki_mock.web import http_status, not_modified

log = logging.getLogger("jpki_mock.crl.http")

_PATH = re.compile(r"^/(?P<kind>[a-z]+)/g(?P<gen>[0-9]{1,6})/(?P<name>[0-9a-z-]{1,16})\.(?P<fmt>crl|pem)$")
_NUMBER = re.compile(r"[0-9]{1,18}")
_LAYOUT = "/crl/{sign|auth}/g{generation}/{full|arl|<municipality code>}[-delta].{crl|pem}[?number=N]"
ISSUER_TTL = 5.0
_CHUNK = 48 * 1024  # a multiple of 48 bytes = 64 base64 characters = one PEM line
_PEM_BEGIN = b"-----BEGIN X509 CRL-----\n"
_PEM_END = b"-----END X509 CRL-----\n"
_STATUS = {200: "200 OK", 304: "304 Not Modified", 400: "400 Bad Request", 401: "401 Unauthorized",
           403: "403 Forbidden", 404: "404 Not Found", 405: "405 Method Not Allowed", 409: "409 Conflict",
           413: "413 Content Too Large", 500: "500 Internal Server Error", 503: "503 Service Unavailable"}


def parse_time(tlv: bytes) -> datetime:
    """A DER UTCTime / GeneralizedTime as the CRL writer encodes it (always seconds and Z)."""
    text = tlv[2:].decode("ascii")
    if tlv[0] == der.UTC_TIME:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def crl_times(head: bytes) -> tuple[datetime, datetime]:
    """thisUpdate and nextUpdate from the first bytes of a CRL (they precede the entries)."""
    _, pos, _ = der.read_tlv(head, 0, len(head), partial=True)  # CertificateList
    _, pos, _ = der.read_tlv(head, pos, len(head), partial=True)  # tbsCertList
    for _ in range(3):  # version, signature, issuer
        _, _, pos = der.read_tlv(head, pos, len(head))
    _, _, end = der.read_tlv(head, pos, len(head))
    this_update = parse_time(head[pos:end])
    _, _, end2 = der.read_tlv(head, end, len(head))
    return this_update, parse_time(head[end:end2])


class _Meta:
    __slots__ = ("etag", "next_update", "size", "this_update")

    def __init__(self, etag: str, this_update: datetime, next_update: datetime, size: int):
        self.etag, self.this_update, self.next_update, self.size = etag, this_update, next_update, size


class CrlApp:
    def __init__(self, deps: CrlDeps):
        self.deps = deps
        self.publisher = Publisher(deps)
        self.access = AccessControl(deps.store) if deps.config.crl.access_control else None
        self._meta: dict[tuple[str, int, int, int], _Meta] = {}
        self._lock = threading.Lock()
        self._issuer_cache: tuple[float, list[Issuer]] | None = None

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            return self._handle(environ, start_response)
        except errors.JpkiError as err:
            environ[REASON] = str(err)  # the access log says why (jpki_mock.accesslog)
            return self._error(start_response, err)
        except Exception as exc:  # never a bare 500 with a traceback
            reason = outage_reason(exc)
            if reason is not None:  # 503 naming the database, the outage logged once (jpki_mock.db.Outage)
                environ[REASON] = f"the database is unreachable: {reason}"
                return self._error(start_response, self.deps.store.outage.report(reason))
            log.exception("CRL request %s failed", environ.get("PATH_INFO"))
            return self._json(start_response, 500, {"error": "internal_error",
                                                    "message": "internal error; see the server log"})

    def _json(self, start_response: StartResponse, status: int, body: dict[str, object],
              extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        data = json.dumps(body, ensure_ascii=False).encode()
        start_response(_STATUS[status], [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                         ("Cache-Control", "no-store"), *(extra or [])])
        return [data]

    def _error(self, start_response: StartResponse, err: errors.JpkiError) -> list[bytes]:
        status = http_status(err)  # the one error -> HTTP status table
        extra = [("WWW-Authenticate", 'Bearer realm="jpki-mock CRL"')] if status == 401 else []
        if status == 503:
            extra.append(("Retry-After", "1"))
        return self._json(start_response, status, err.to_dict(), extra)

    def _handle(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return self._json(start_response, 405, {"error": "method_not_allowed",
                                                    "message": f"{method} is not allowed: CRLs are fetched with GET"},
                              [("Allow", "GET, HEAD")])
        path = environ.get("PATH_INFO", "")
        m = _PATH.match(path)
        if not m:
            raise errors.NotFound(f"no CRL at {environ.get('SCRIPT_NAME', '')}{path}", field="path", allowed=_LAYOUT)
        kind, generation, name, fmt = m["kind"], int(m["gen"]), m["name"], m["fmt"]
        if kind not in KINDS:
            raise errors.NotFound(f"no CA kind {kind!r}", field="kind", allowed=list(KINDS))
        number = self._number(environ.get("QUERY_STRING", ""))
        if self.access is not None:
            party = self.access.from_environ(environ)
            if party is None:
                raise errors.Unauthorized("CRLs are served to registered relying parties only: send "
                                          "'Authorization: Bearer <credential>' or 'X-JPKI-Relying-Party'",
                                          field="Authorization")
            if not party.may_query(kind):
                raise errors.Forbidden(
                    f"relying party {party.name!r} is registered for {party.kinds} certificates only", field="kind")
        stream = self.publisher.find(kind, generation, name, self._issuers())
        if number is None and (pinned := timetravel.pinned()) is not None:
            number = self._number_at(stream, pinned)
        if number is None:
            file = self.publisher.current_file(stream)
            missing = f"{stream.label} has not been published yet; publish with `jpki-mock crl publish`"
        else:
            file = self.publisher.archive_file(stream, number)
            missing = f"{stream.label} has no archived CRL number {number}"
        try:
            # Not a with-block: the open file is handed to the WSGI body, which closes it once sent.
            fh = open(file, "rb")  # noqa: SIM115
        except FileNotFoundError:
            if number is not None or stream.municipality is None:
                raise errors.NotFound(missing, field="number" if number is not None else "path") from None
            # A partition no certificate named when the schedule last ran: published now, as it
            # would be by the daily run (Publisher.first_publication); only when the file is missing,
            # so a served CRL costs no extra system call.  The full CRL and the ARL come from
            # `crl publish` or the schedule's first run.
            self.publisher.first_publication(stream)
            fh = open(file, "rb")  # noqa: SIM115
        try:
            meta = self._file_meta(fh, file)
            return self._serve(environ, start_response, fh, meta, fmt, method == "HEAD", archived=number is not None)
        except BaseException:
            fh.close()
            raise

    def _issuers(self) -> list[Issuer]:
        """CA generations, re-read at most every few seconds (a rollover shows up within that time)."""
        now = time.monotonic()
        with self._lock:
            if self._issuer_cache is not None and self._issuer_cache[0] > now:
                return self._issuer_cache[1]
        try:
            issuers = self.deps.status.issuers()
        except Exception as exc:
            # While the database is unreachable no generation can be added or revoked: the list
            # read last still holds, and the CRL files on disk can still be served.
            if outage_reason(exc) is None or self._issuer_cache is None:
                raise
            return self._issuer_cache[1]
        with self._lock:
            self._issuer_cache = (now + ISSUER_TTL, issuers)
        return issuers

    def _number_at(self, stream: Stream, at: datetime) -> int | None:
        """Time travel (docs/time-travel.md): the CRL a verifier would have fetched at ``at`` is
        the last one published by then; None (the current file) when that is the latest.  "Published"
        is the issue time, not the backdated thisUpdate: before it, that CRL did not exist yet."""
        records = self.publisher.records(stream)
        backdate = self.deps.config.crl.backdate_seconds
        earlier = [r for r in records if issued_at(r, backdate) <= at]
        if not earlier:
            raise errors.NotFound(f"{stream.label} had no CRL published yet at {at.isoformat()}",
                                  field=timetravel.HEADER)
        return None if earlier[-1] is records[-1] else earlier[-1].number

    @staticmethod
    def _number(query: str) -> int | None:
        if not query:
            return None
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=True, max_num_fields=4)
        except ValueError as exc:
            raise errors.InvalidInput(f"bad query string: {exc}", field="query",
                                      allowed="number=<CRL number>") from None
        unknown = sorted(set(params) - {"number"})
        if unknown:
            raise errors.InvalidInput(f"unknown query parameter(s) {unknown}", field=unknown[0], allowed=["number"])
        values = params["number"]
        # ASCII digits only (str.isdigit() also takes "²", which int() refuses); 18 digits stay
        # within the BigInteger column.
        if len(values) != 1 or not _NUMBER.fullmatch(values[0]) or int(values[0]) < 1:
            raise errors.InvalidInput(f"{values[-1]!r} is not a CRL number", field="number",
                                      allowed="one positive whole number")
        return int(values[0])

    def _file_meta(self, fh: BinaryIO, file: Path) -> _Meta:
        st = os.fstat(fh.fileno())
        key = (str(file), st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            meta = self._meta.get(key)
        if meta is not None:
            return meta
        digest = hashlib.sha256()
        head = fh.read(4096)
        try:
            this_update, next_update = crl_times(head)
        except errors.MalformedData as exc:  # our own file is broken: a server fault (500), not the client's
            raise RuntimeError(f"{file} does not start like a CRL: {exc}") from exc
        digest.update(head)
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
        fh.seek(0)
        meta = _Meta(digest.hexdigest()[:32], this_update, next_update, st.st_size)
        with self._lock:
            if len(self._meta) > 4096:
                self._meta.clear()
            self._meta[key] = meta
        return meta

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse, fh: BinaryIO, meta: _Meta, fmt: str,
               head_only: bool, archived: bool) -> Iterable[bytes]:
        etag = f'"{meta.etag}-{fmt}"'
        now = self.deps.clock.now()
        max_age = max(0, int((meta.next_update - now).total_seconds()))
        headers = [
            ("ETag", etag),
            ("Last-Modified", format_datetime(meta.this_update, usegmt=True)),
            ("Expires", format_datetime(meta.next_update, usegmt=True)),
            # RFC 5019 section 6.2 style: cache until nextUpdate, then revalidate.
            ("Cache-Control", f"public, no-transform, must-revalidate, max-age={max_age}"),
        ]
        if not_modified(environ, etag, meta.this_update):
            fh.close()
            start_response(_STATUS[304], headers)
            return []
        if fmt == "crl":
            size = meta.size
            body = _file_chunks(fh)
            ctype = "application/pkix-crl"
        else:
            b64 = 4 * ((meta.size + 2) // 3)
            size = len(_PEM_BEGIN) + b64 + (b64 + 63) // 64 + len(_PEM_END)
            body = _pem_chunks(fh)
            ctype = "application/x-pem-file"
        headers += [("Content-Type", ctype), ("Content-Length", str(size))]
        start_response(_STATUS[200], headers)
        if head_only:
            fh.close()
            return []
        return body


class _FileBody:
    """A WSGI body iterator that closes its file when the server is done with it."""

    def __init__(self, fh: BinaryIO, transform: Callable[[BinaryIO], Iterator[bytes]] | None = None):
        self.fh, self.transform = fh, transform

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        try:
            if self.transform is None:
                while chunk := self.fh.read(1 << 16):
                    yield chunk
            else:
                yield from self.transform(self.fh)
        finally:  # closed once fully sent, even by a server that forgets close()
            self.fh.close()

    def close(self) -> None:
        self.fh.close()


def _file_chunks(fh: BinaryIO) -> _FileBody:
    return _FileBody(fh)


def _pem_lines(fh: BinaryIO) -> Iterator[bytes]:
    yield _PEM_BEGIN
    while chunk := fh.read(_CHUNK):
        text = base64.b64encode(chunk)
        yield b"".join(text[i:i + 64] + b"\n" for i in range(0, len(text), 64))
    yield _PEM_END


def _pem_chunks(fh: BinaryIO) -> _FileBody:
    return _FileBody(fh, _pem_lines)


def make_app(deps: CrlDeps) -> WSGIApplication:
    """The ``/crl`` mount of the combined server (mounted by jpki_mock.app).  With ``time_travel =
    true``, ``X-JPKI-Mock-Time`` serves the CRL that was current at that time."""
    return timetravel.wsgi(CrlApp(deps), deps)


__all__ = ["CrlApp", "crl_times", "make_app"]
