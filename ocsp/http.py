"""The responder as a raw WSGI callable (RFC 6960 appendix A, RFC 5019/9919 caching).

No framework routing: Flask adds ~5x overhead over a bare callable (DESIGN.md), and a cached
GET must cost a handful of dict lookups.  The hot path is the first branch of
:meth:`OcspApp.__call__`: check the revocation epoch, look the raw path up, count, return
bytes.  Everything else (decoding, issuer matching, access control, live signing) is below it.

HTTP status codes: malformedRequest 400 (413 oversize, 415 wrong content type), internalError
500, tryLater 503 with Retry-After; every other OCSP answer 200.  Every error body is an
OCSPResponse, never an HTML page or a traceback.
"""

from __future__ import annotations

import logging
from time import time as _time

from ca import timetravel
from ca.access import AccessControl, credential_from_environ
from ca.clock import SystemClock
from ca.config import load_config
from ca.runtime import Runtime

from . import response, stats
from .request import MalformedRequest, decode_get_path, parse_request
from .source import Answer, Overloaded, Responder, error_answer

log = logging.getLogger("jpki_mock.ocsp")

OCSP_REQUEST = "application/ocsp-request"
#: the time a time-travelled request is pinned to (None normally): such requests skip the caches.
_pinned = timetravel.pinned
PLAIN = [("Content-Type", "text/plain; charset=utf-8")]


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match (RFC 9110 section 13.1.2): a list of tags, weak comparison, or ``*``."""
    if header == etag:
        return True
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


class OcspApp:
    """One per process: ``make_app(runtime)``; mounted at /ocsp or served at / standalone."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.cfg = rt.config.ocsp
        self.responder = Responder(rt)
        self.counters = stats.Counters(rt.store)
        self.access = AccessControl(rt.store) if self.cfg.access_control else None

    def _now(self) -> float:
        clock = self.rt.clock
        return _time() if clock.__class__ is SystemClock else clock.now().timestamp()

    def __call__(self, environ, start_response):
        try:
            method = environ["REQUEST_METHOD"]
            if method == "GET":
                # ---- hot path: cached GET -----------------------------------------------------
                r = self.responder
                if r.read_seq() != r.seen:
                    r.sync()
                path = environ.get("PATH_INFO", "")
                entry = r.by_request.get(path)
                count_key = None
                if entry is not None and _pinned() is None:
                    if self.access is None:
                        count_key = entry.count_key
                    else:
                        # Access control on (as at J-LIS): a registered party allowed this kind is
                        # served from the cache too (a per-process credential cache, no database).
                        party = self.access.from_environ(environ)
                        if party is not None and party.may_query(entry.kind):
                            count_key = (entry.kind, entry.status, party.name)
                if count_key is not None:
                    clock = self.rt.clock
                    now = _time() if clock.__class__ is SystemClock else clock.now().timestamp()
                    if now < entry.refresh_at:
                        c = self.counters
                        if now >= c.day_end:
                            c.roll(now)
                        c.counts[(c.day,) + count_key] += 1
                        inm = environ.get("HTTP_IF_NONE_MATCH")
                        if inm is not None and _etag_matches(inm, entry.etag):
                            start_response("304 Not Modified", entry.headers(int(now))[2:])
                            return [b""]
                        start_response("200 OK", entry.headers(int(now)))
                        return [entry.der]
                # ---- end of hot path -----------------------------------------------------
                return self._get(environ, start_response, path)
            if method == "POST":
                return self._post(environ, start_response)
            start_response("405 Method Not Allowed", [*PLAIN, ("Allow", "GET, POST")])
            return [f"{method} is not allowed: send an OCSP request by GET or POST (RFC 6960 appendix A)\n".encode()]
        except Exception:  # noqa: BLE001 - the edge: an OCSP internalError, never a bare 500 page
            log.exception("OCSP request failed")
            return self._send(start_response, error_answer(response.INTERNAL_ERROR), environ)

    # ------------------------------------------------------------------ GET / POST
    def _get(self, environ, start_response, path: str):
        if path in ("", "/"):
            start_response("200 OK", PLAIN)
            return [b"jpki-mock OCSP responder: POST application/ocsp-request or GET /<base64 request>\n"]
        if path == "/metrics":
            self.counters.flush()
            text = stats.prometheus(self.rt.store, {f"process_{k}": v for k, v in self.responder.stats().items()})
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
            return [text.encode()]
        try:
            raw = decode_get_path(path)
        except MalformedRequest:
            return self._send(start_response, error_answer(response.MALFORMED_REQUEST), environ)
        return self._respond(environ, start_response, raw, path, get=True)

    def _post(self, environ, start_response):
        ctype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if ctype != OCSP_REQUEST:
            return self._send(start_response, error_answer(response.MALFORMED_REQUEST, http="415 Unsupported Media Type"),
                              environ)
        cap = self.cfg.max_request_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > cap:
            return self._send(start_response, error_answer(response.MALFORMED_REQUEST, http="413 Content Too Large"),
                              environ)
        stream = environ["wsgi.input"]
        body = stream.read(length) if length >= 0 else stream.read(cap + 1)
        if len(body) > cap:
            return self._send(start_response, error_answer(response.MALFORMED_REQUEST, http="413 Content Too Large"),
                              environ)
        r = self.responder
        r.check()
        entry = r.by_request.get(body)
        if entry is not None and self.access is None and _pinned() is None and self._now() < entry.refresh_at:
            return self._send(start_response, Answer(entry.der, "200 OK", None, [entry.count_key[:2]]), environ)
        return self._respond(environ, start_response, body, body, get=False)

    def _respond(self, environ, start_response, raw: bytes, key, get: bool):
        party = None
        if self.access is not None:
            party = self.access.from_environ(environ)
        r = self.responder
        r.check()
        try:
            req = parse_request(raw, self.cfg.max_certids)
            answer = r.answer(req, party, key)
        except MalformedRequest:
            answer = error_answer(response.MALFORMED_REQUEST)
        except Overloaded:
            answer = error_answer(response.TRY_LATER)
        if not get:
            answer.entry = None  # RFC 5019 caching headers are for GET only
        return self._send(start_response, answer, environ, party.name if party is not None else "-")

    def _send(self, start_response, answer: Answer, environ, party: str = "-"):
        now = self._now()
        for kind, status in answer.labels:
            self.counters.add(now, kind, status, party)
        if answer.entry is not None:
            headers = answer.entry.headers(int(now))
            inm = environ.get("HTTP_IF_NONE_MATCH")
            if inm is not None and _etag_matches(inm, answer.entry.etag):
                start_response("304 Not Modified", headers[2:])
                return [b""]
        else:
            headers = [("Content-Type", "application/ocsp-response"), ("Content-Length", str(len(answer.der)))]
            if answer.http.startswith("503"):
                headers.append(("Retry-After", "1"))
        start_response(answer.http, headers)
        return [answer.der]


def make_app(rt: Runtime) -> OcspApp:
    """The plug-in factory (``ca.plugins.MOUNTS``): one responder per worker process.  With
    ``time_travel = true`` it honours ``X-JPKI-Mock-Time`` (docs/time-travel.md); otherwise
    :func:`ca.timetravel.wsgi` returns the app itself."""
    app = OcspApp(rt)
    app.counters.start(rt.config.ocsp.stats_flush_seconds)
    return timetravel.wsgi(app, rt)


def app_factory() -> OcspApp:
    """Entry point for granian workers of ``jpki-mock ocsp serve`` (configuration from the environment)."""
    return make_app(Runtime.open(load_config()))
