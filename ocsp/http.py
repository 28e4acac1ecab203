"""The responder as a raw WSGI callable (RFC 6960 appendix A, RFC 5019/9919 caching).

No framework routing: Flask adds ~5x overhead over a bare callable (DESIGN.md), and a cached
GET must cost a handful of dict lookups.  The hot path is the first branch of
:meth:`OcspApp.__call__`: check the revocation epoch, look the raw path up, count, return
bytes.  A nonced POST shaped like one answered before (the same client asking again, with a
fresh nonce) takes that branch too: :meth:`ocsp.source.Responder.nonced` signs it in a few
steps.  Everything else (decoding, issuer matching, access control, the general live
signing) is below it.

HTTP status codes: malformedRequest 400 (413 oversize, 415 wrong content type), internalError
500, tryLater 503 with Retry-After; every other OCSP answer 200.  Every error body is an
OCSPResponse, never an HTML page or a traceback.
"""

from __future__ import annotations

from typing import Any

import logging
from time import time as _time

from jpki_mock import travel as timetravel
from jpki_mock.access import AccessControl
from jpki_mock.clock import SystemClock

from jpki_mock.ocsp import response, stats
from jpki_mock.ocsp.request import MalformedRequest, decode_get_path, known_shape, parse_request
from jpki_mock.ocsp.source import CONTENT_TYPE, Answer, Overloaded, Responder, error_answer

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

    def __init__(self, rt: Any):
        self.rt = rt
        self.cfg = rt.config.ocsp
        self.responder = Responder(rt)
        self._now = self.responder.now
        self.counters = stats.Counters(rt.store)
        self.access = AccessControl(rt.store) if self.cfg.access_control else None
        #: raw credential header -> (valid until, kinds it may query, relying party name, Party or
        #: None, the party's tally of the day, ocsp.stats.Counters.tally)
        self._parties: dict[str, tuple[float, frozenset, str, object, list[int]]] = {}
        self.time_travel = rt.config.time_travel
        self.wsgi = self._hot_path()

    def _party(self, environ, now: float):
        """The relying party presenting a credential (ca/access.py), remembered per process by the
        raw header value so that the hot path, and the next live-signed request, find it with
        one dict lookup."""
        auth = environ.get("HTTP_AUTHORIZATION")
        raw = auth or environ.get("HTTP_X_JPKI_RELYING_PARTY")
        hit = self._parties.get(raw) if raw else None
        if hit is not None and hit[0] > now:
            return hit[3]
        party = self.access.from_environ(environ)
        # The hot path keys by the first header present; that is the credential unless a
        # non-Bearer Authorization header sits next to X-JPKI-Relying-Party.
        if raw and (not auth or auth[:7].lower() == "bearer "):
            if len(self._parties) >= 10_000:
                self._parties.clear()
            kinds = frozenset() if party is None else frozenset(k for k in ("sign", "auth") if party.may_query(k))
            name = party.name if party is not None else "-"
            counters = self.counters
            counters.roll(now)
            # Valid until the day ends at the latest: the tally counts that day's answers.
            self._parties[raw] = (min(now + self.access.ttl, counters.day_end), kinds, name, party, counters.tally(name))
        return party

    def __call__(self, environ, start_response):
        return self.wsgi(environ, start_response)

    def _hot_path(self):
        """The WSGI function itself, a closure: its names are cell reads instead of attribute
        chains, which matters when the whole answer costs a few microseconds.  (``by_request`` is
        only ever cleared in place, never replaced, so capturing it is safe.)"""
        r = self.responder
        by_request = r.by_request
        epoch = r.epoch  # item 0: the revocation sequence number (ca/epoch.py)
        counters = self.counters
        parties = self._parties
        access = self.access is not None
        time_travel = self.time_travel
        clock = self.rt.clock  # never replaced; a time-travelling one wraps the system clock
        system_clock = clock.__class__ is SystemClock
        respond, body_of, send = self._respond, self._body, self._send
        nonced = r.nonced
        # RFC 9654 echo (or require): a nonced answer is signed per request and never cached;
        # with "ignore" the nonce is dropped and the request is answered from the cache.
        live_nonced = self.cfg.nonce_policy != "ignore"

        def ocsp_app(environ, start_response):
            try:
                method = environ["REQUEST_METHOD"]
                if method == "GET":
                    if epoch[0] != r.seen:
                        r.sync()
                    key = environ.get("PATH_INFO", "")
                elif method == "POST":
                    key = body_of(environ, start_response)
                    if key.__class__ is not bytes:
                        return key  # an error answer was sent
                    r.check()
                else:
                    start_response("405 Method Not Allowed", [*PLAIN, ("Allow", "GET, POST")])
                    return [f"{method} is not allowed: send an OCSP request by GET or POST (RFC 6960 appendix A)\n".encode()]
                # ---- hot path: a pre-signed answer for exactly these request bytes, or a nonced
                # request shaped like one answered before, signed in a few steps -----------------
                entry = by_request.get(key)
                shape = known_shape(key) if entry is None and method == "POST" and live_nonced else None
                if (entry is not None or shape is not None) and (not time_travel or _pinned() is None):
                    now = _time() if system_clock else clock.now().timestamp()
                    # an entry is served while fresh; renew() rebuilds its headers once a second
                    if entry is None or now < entry.hot_until or entry.renew(now):
                        if access:
                            hit = parties.get(environ.get("HTTP_AUTHORIZATION")
                                              or environ.get("HTTP_X_JPKI_RELYING_PARTY"))
                            if hit is None or hit[0] <= now:
                                # unknown or expired (at the latest when the day ends, for its
                                # tally): the full path decides and remembers
                                return respond(environ, start_response, key, method == "GET")
                            kinds, tally = hit[1], hit[4]
                        else:
                            if now >= counters.day_end:
                                counters.roll(now)
                            kinds, tally = None, counters.anonymous
                        if entry is not None:
                            if kinds is not None and entry.kind not in kinds:
                                return respond(environ, start_response, key, method == "GET")
                            tally[entry.slot] += 1
                        else:
                            try:
                                signed = nonced(shape, key, kinds, now)
                            except Overloaded:
                                return send(start_response, error_answer(response.TRY_LATER), environ,
                                            hit[2] if access else "-")
                            if signed is None:
                                return respond(environ, start_response, key, False)
                            der, slot = signed
                            tally[slot] += 1
                            start_response("200 OK", [CONTENT_TYPE, ("Content-Length", str(len(der)))])
                            return [der]
                        if method == "POST":  # RFC 5019 caching headers are for GET
                            start_response("200 OK", entry.post_headers)
                            return [entry.der]
                        headers = entry.header_list
                        inm = environ.get("HTTP_IF_NONE_MATCH")
                        if inm is not None and _etag_matches(inm, entry.etag):
                            start_response("304 Not Modified", headers[2:])
                            return [b""]
                        start_response("200 OK", headers)
                        return [entry.der]
                # ---- end of hot path ---------------------------------------------------------
                return respond(environ, start_response, key, method == "GET")
            except Exception:  # noqa: BLE001 - the edge: an OCSP internalError, never a bare 500 page
                log.exception("OCSP request failed")
                return send(start_response, error_answer(response.INTERNAL_ERROR), environ)

        ocsp_app.ocsp = self  # type: ignore[attr-defined]
        return ocsp_app

    # ------------------------------------------------------------------ the rest
    def _body(self, environ, start_response):
        """The POST body, or (after sending it) an error answer for a wrong type or size."""
        ctype = environ.get("CONTENT_TYPE", "")
        if ctype != OCSP_REQUEST and ctype.partition(";")[0].strip().lower() != OCSP_REQUEST:
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
        return bytes(body)

    def _respond(self, environ, start_response, key, get: bool):
        """Everything that is not a pre-signed hit: special paths, decoding, access, live signing."""
        if get:
            if key in ("", "/"):
                start_response("200 OK", PLAIN)
                return [b"jpki-mock OCSP responder: POST application/ocsp-request or GET /<base64 request>\n"]
            if key == "/metrics":
                self.counters.flush()
                text = stats.prometheus(self.rt.store, {f"process_{k}": v for k, v in self.responder.stats().items()})
                start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
                return [text.encode()]
        party = self._party(environ, self._now()) if self.access is not None else None
        try:
            req = parse_request(decode_get_path(key) if get else key, self.cfg.max_certids)
            answer = self.responder.answer(req, party, key)
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
            headers = [CONTENT_TYPE, ("Content-Length", str(len(answer.der)))]
            if answer.http.startswith("503"):
                headers.append(("Retry-After", "1"))
        start_response(answer.http, headers)
        return [answer.der]


def make_app(rt: Any) -> OcspApp:
    """The plug-in factory (mounted by :mod:`jpki_mock.app`): one responder per worker process.  With
    ``time_travel = true`` it honours ``X-JPKI-Mock-Time`` (docs/time-travel.md); otherwise
    :func:`ca.timetravel.wsgi` returns the app itself."""
    app = OcspApp(rt)
    app.counters.start(rt.config.ocsp.stats_flush_seconds)
    return timetravel.wsgi(app.wsgi, rt)
