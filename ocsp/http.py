"""The responder as a raw WSGI callable (RFC 6960 appendix A, RFC 5019/9919 caching).

No framework routing: Flask adds ~5x overhead over a bare callable (docs/sources.md section 7), and a cached
GET must cost a handful of dict lookups.  The hot path is the first branch of
:meth:`OcspApp.__call__`: check the revocation epoch, look the raw path up, count, return
bytes.  A nonced POST shaped like one answered before (the same client asking again, with a
fresh nonce) takes that branch too: :meth:`ocsp.live.LiveSigner.nonced` signs it in a few
steps.  Everything else decodes the request, fixes its :class:`~ocsp.answer.Context` (request
time, relying party, raw bytes) and asks the chain of sources (ocsp/source.py).

HTTP status codes: malformedRequest 400 (413 oversize, 415 wrong content type), internalError
500, tryLater 503 with Retry-After; every other OCSP answer 200.  Every error body is an
OCSPResponse, never an HTML page or a traceback.  An unreachable database is tryLater, not
internalError (ocsp/outage.py): logged once per outage, not per request.

``/healthz`` (the process answers; no database) and ``/readyz`` (the database answers and a CA
is initialised, else 503 with a JSON reason naming the database) are routed before anything
else, so that a probe never waits for the database or decodes OCSP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from time import time as _time
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from jpki_mock import travel as timetravel
from jpki_mock.access import AccessControl, Party
from jpki_mock.accesslog import LABEL, REASON
from jpki_mock.ca.signer import Keyring
from jpki_mock.ca.status import StatusReader
from jpki_mock.clock import Clock, SystemClock
from jpki_mock.config import Config
from jpki_mock.db import Store, outage_reason
from jpki_mock.epoch import RevocationEpoch, access_cell
from jpki_mock.ocsp import response, stats
from jpki_mock.ocsp.answer import CONTENT_TYPE, Answer, Context, Overloaded, Unauthorized, error_answer
from jpki_mock.ocsp.request import MalformedRequest, decode_get_path, known_shape, parse_request
from jpki_mock.ocsp.source import build_source
from jpki_mock.rsgi import BodyTimeout
from jpki_mock.vocab import KINDS
from jpki_mock.web import etag_matches

log = logging.getLogger("jpki_mock.ocsp")

OCSP_REQUEST = "application/ocsp-request"
#: the time a time-travelled request is pinned to (None normally): such requests skip the caches.
_pinned = timetravel.pinned
PLAIN = [("Content-Type", "text/plain; charset=utf-8")]
JSON = ("Content-Type", "application/json")
#: the probes routed before the revocation check and OCSP decoding
PROBES = frozenset(("/healthz", "/readyz"))
BANNER = b"jpki-mock OCSP responder: POST application/ocsp-request or GET /<base64 request>\n"
#: the status a tally slot counts (ocsp.stats.SLOTS, and the same + HIT for the cache's hits):
#: the access log's label of an answer the hot path sent
SLOT_STATUS = [status for _kind, status in stats.LABELS] * 2


class Pass:
    """What the hot path knows of a credential (the raw header value), until ``until`` and
    while the access sequence is still ``seq`` (a relying party removed in any process moves
    it: jpki_mock.access)."""

    __slots__ = ("kinds", "name", "party", "seq", "tally", "until")

    def __init__(self, until: float, seq: int, kinds: frozenset[str], name: str, party: Party | None,
                 tally: list[int]):
        self.until = until
        self.seq = seq
        #: the certificate kinds it may query
        self.kinds = kinds
        #: the relying party's name ("-" for an unknown credential)
        self.name = name
        #: the jpki_mock.access party, or None
        self.party = party
        #: the party's tally of the day (ocsp.stats.Counters.tally)
        self.tally = tally


class OcspApp:
    """One per process (:func:`make_app`); mounted at /ocsp or served at / standalone."""

    def __init__(self, config: Config, clock: Clock, store: Store, status: StatusReader, keyring: Keyring,
                 epoch: RevocationEpoch):
        self.cfg = config.ocsp
        #: never replaced; a time-travelling one wraps the system clock (read by travel.wsgi too)
        self.clock = clock
        self.store = store
        self.chain = build_source(self.cfg, status, keyring, epoch)
        self.counters = stats.Counters(store)
        # The access sequence from where this process learns of revocations too: the host's
        # epoch file, or the database (its listener on PostgreSQL).
        check = self.cfg.revocation_check
        changes = access_cell(store, epoch if check == "epoch" else None, read=check == "database") \
            if self.cfg.access_control else None
        self.access = AccessControl(store, changes=changes) if changes is not None else None
        #: item 0: the access sequence (jpki_mock.epoch); a credential's Pass holds while it stays
        self._changes: Sequence[int] = changes if changes is not None else (0,)
        #: raw credential header -> Pass (the hot path looks up None, no header, too: never stored)
        self._parties: dict[str | None, Pass] = {}
        self.time_travel = config.time_travel
        self.wsgi = self._hot_path()

    def _now(self) -> float:
        """The clock's time as a POSIX timestamp (a time-travelled request's own time while it
        runs); time.time() itself for the system clock, which saves building a datetime."""
        clock = self.clock
        return _time() if clock.__class__ is SystemClock else clock.now().timestamp()

    def _party(self, environ: WSGIEnvironment, now: float) -> Party | None:
        """The relying party presenting a credential (jpki_mock.access), remembered per process
        by the raw header value so that the hot path, and the next live-signed request, find it
        with one dict lookup."""
        auth = environ.get("HTTP_AUTHORIZATION")
        raw = auth or environ.get("HTTP_X_JPKI_RELYING_PARTY")
        hit = self._parties.get(raw) if raw else None
        seq = self._changes[0]  # before the lookup: a removal after it moves it past
        if hit is not None and hit.until > now and hit.seq == seq:
            return hit.party
        access = self.access
        if access is None:  # callers ask only with access control on
            return None
        party = access.from_environ(environ)
        # The hot path keys by the first header present; that is the credential unless a
        # non-Bearer Authorization header sits next to X-JPKI-Relying-Party.
        if raw and (not auth or auth[:7].lower() == "bearer "):
            if len(self._parties) >= 10_000:
                self._parties.clear()
            kinds: frozenset[str] = frozenset() if party is None else frozenset(k for k in KINDS if party.may_query(k))
            name = party.name if party is not None else "-"
            counters = self.counters
            counters.roll(now)
            # Valid until the day ends at the latest: the tally counts that day's answers.
            self._parties[raw] = Pass(min(now + access.ttl, counters.day_end), seq, kinds, name, party,
                                      counters.tally(name))
        return party

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.wsgi(environ, start_response)

    def _hot_path(self) -> WSGIApplication:
        """The WSGI function itself, a closure: its names are cell reads instead of attribute
        chains, which matters when the whole answer costs a few microseconds.  (``hit`` is the
        pre-signed requests' dict lookup: that dict is only ever cleared in place, never
        replaced, so capturing it is safe.)"""
        r = self.chain.presigned
        hit = r.hit
        epoch = r.epoch  # item 0: the revocation sequence number (jpki_mock/epoch.py)
        counters = self.counters
        parties = self._parties
        access = self.access is not None
        changes = self._changes
        time_travel = self.time_travel
        clock = self.clock  # never replaced; a time-travelling one wraps the system clock
        system_clock = clock.__class__ is SystemClock
        respond, body_of, send, failed, probe = self._respond, self._body, self._send, self._failed, self._probe
        nonced = self.chain.live.nonced
        slot_status = SLOT_STATUS
        # RFC 9654 echo (or require): a nonced answer is signed per request and never cached;
        # with "ignore" the nonce is dropped and the request is answered from the cache.
        live_nonced = self.cfg.nonce_policy != "ignore"

        def ocsp_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            try:
                method = environ["REQUEST_METHOD"]
                if method == "GET":
                    key = environ.get("PATH_INFO", "")
                    if key in PROBES:
                        return probe(key, start_response)
                    if epoch[0] != r.seen:
                        r.sync()
                elif method == "POST":
                    key = body_of(environ, start_response)
                    if key.__class__ is not bytes:
                        # not bytes: an error answer was sent (mypy narrows this test, cheaper than
                        # isinstance, only to bytes)
                        return key  # type: ignore[return-value]
                    r.check()
                else:
                    environ[REASON] = f"{method} is not allowed: GET or POST (RFC 6960 appendix A)"
                    start_response("405 Method Not Allowed", [*PLAIN, ("Allow", "GET, POST")])
                    return [f"{method} is not allowed: send an OCSP request by GET or POST (RFC 6960 appendix A)\n"
                            .encode()]
                # ---- hot path: a pre-signed answer for exactly these request bytes, or a nonced
                # request shaped like one answered before, signed in a few steps -----------------
                entry = hit(key)
                shape = known_shape(key) if entry is None and method == "POST" and live_nonced else None
                if (entry is not None or shape is not None) and (not time_travel or _pinned() is None):
                    now = _time() if system_clock else clock.now().timestamp()
                    # an entry is served while fresh; renew() rebuilds its headers once a second
                    if entry is None or now < entry.hot_until or entry.renew(now):
                        if access:
                            known = parties.get(environ.get("HTTP_AUTHORIZATION")
                                                or environ.get("HTTP_X_JPKI_RELYING_PARTY"))
                            if known is None or known.until <= now or known.seq != changes[0]:
                                # unknown, expired (at the latest when the day ends, for its
                                # tally) or a relying party removed since: the full path decides
                                # and remembers
                                return respond(environ, start_response, key, method == "GET")
                            kinds, tally = known.kinds, known.tally
                        else:
                            if now >= counters.day_end:
                                counters.roll(now)
                            kinds, tally = None, counters.anonymous
                        if entry is not None:
                            if kinds is not None and entry.kind not in kinds:
                                return respond(environ, start_response, key, method == "GET")
                            tally[entry.slot] += 1
                            environ[LABEL] = slot_status[entry.slot]  # the access log's label (jpki_mock.accesslog)
                        else:
                            assert shape is not None  # no entry: the branch was taken for the shape
                            try:
                                signed = nonced(shape, key, kinds, now)
                            except Overloaded as exc:
                                environ[REASON] = str(exc)
                                return send(start_response, error_answer(response.TRY_LATER), environ,
                                            known.name if access and known is not None else "-")
                            if signed is None:
                                return respond(environ, start_response, key, False)
                            der, slot = signed
                            tally[slot] += 1
                            environ[LABEL] = slot_status[slot]
                            start_response("200 OK", [CONTENT_TYPE, ("Content-Length", str(len(der)))])
                            return [der]
                        if method == "POST":  # RFC 5019 caching headers are for GET
                            start_response("200 OK", entry.post_headers)
                            return [entry.der]
                        headers = entry.header_list
                        inm = environ.get("HTTP_IF_NONE_MATCH")
                        if inm is not None and etag_matches(inm, headers[-1][1]):  # the ETag is last
                            start_response("304 Not Modified", headers[2:])
                            return [b""]
                        start_response("200 OK", headers)
                        return [entry.der]
                # ---- end of hot path ---------------------------------------------------------
                return respond(environ, start_response, key, method == "GET")
            except Exception as exc:  # the edge: tryLater or internalError, never a bare 500 page
                return failed(environ, start_response, exc)

        # the responder behind the closure, for callers holding only the WSGI function (a
        # deliberate function attribute: WSGIApplication declares none)
        ocsp_app.ocsp = self  # type: ignore[attr-defined]
        return ocsp_app

    # ------------------------------------------------------------------ the rest
    def _body(self, environ: WSGIEnvironment, start_response: StartResponse) -> bytes | list[bytes]:
        """The POST body, or (after sending it) an error answer for a wrong type or size."""
        ctype = environ.get("CONTENT_TYPE", "")
        if ctype != OCSP_REQUEST and ctype.partition(";")[0].strip().lower() != OCSP_REQUEST:
            environ[REASON] = f"Content-Type {ctype or 'none'!r} is not {OCSP_REQUEST} (RFC 6960 appendix A.1)"
            return self._send(start_response,
                              error_answer(response.MALFORMED_REQUEST, http="415 Unsupported Media Type"), environ)
        cap = self.cfg.max_request_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > cap:
            environ[REASON] = f"Content-Length {length} is over ocsp.max_request_bytes ({cap})"
            return self._send(start_response, error_answer(response.MALFORMED_REQUEST, http="413 Content Too Large"),
                              environ)
        stream = environ["wsgi.input"]
        try:
            body = stream.read(length) if length >= 0 else stream.read(cap + 1)
        except BodyTimeout:
            # The server reads bodies with a deadline (jpki_mock.rsgi): 408, RFC 9110 section
            # 15.5.9, tells the client to send the request again, whole; RFC 6960 section 2.3 has
            # no status closer than malformedRequest (tryLater would blame the responder).
            environ[REASON] = f"the body did not arrive within ocsp.body_timeout_ms ({self.cfg.body_timeout_ms} ms)"
            return self._send(start_response, error_answer(response.MALFORMED_REQUEST, http="408 Request Timeout"),
                              environ)
        if len(body) > cap:
            environ[REASON] = f"the body is over ocsp.max_request_bytes ({cap})"
            return self._send(start_response, error_answer(response.MALFORMED_REQUEST, http="413 Content Too Large"),
                              environ)
        return bytes(body)

    def _respond(self, environ: WSGIEnvironment, start_response: StartResponse, key: str | bytes,
                 get: bool) -> list[bytes]:
        """Everything that is not a pre-signed hit: special paths, decoding, access, live signing."""
        if get:
            if key in ("", "/"):
                start_response("200 OK", PLAIN)
                return [BANNER]
            if key == "/metrics":
                self.counters.flush()
                text = stats.prometheus(self.store, {f"process_{k}": v for k, v in self.chain.stats().items()},
                                        self.chain.counters(self.counters.hits()))
                start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
                return [text.encode()]
        now = self._now()
        party = self._party(environ, now) if self.access is not None else None
        try:
            req = parse_request(decode_get_path(key) if isinstance(key, str) else key, self.cfg.max_certids)
            # The edge reads the time-travel pin once; the sources get it in the context.
            pinned = self.time_travel and _pinned() is not None
            answer = self.chain.source.answer(req, Context(now, party, None if pinned else key, pinned))
        except MalformedRequest as exc:
            environ[REASON] = str(exc)  # which field, what was wrong: the answer itself cannot say
            answer = error_answer(response.MALFORMED_REQUEST)
        except Unauthorized as exc:
            environ[REASON] = str(exc)
            answer = error_answer(response.UNAUTHORIZED, exc.kind)
        except Overloaded as exc:
            environ[REASON] = str(exc)
            answer = error_answer(response.TRY_LATER)
        if not get:
            answer.entry = None  # RFC 5019 caching headers are for GET only
        return self._send(start_response, answer, environ, party.name if party is not None else "-")

    def _failed(self, environ: dict[str, Any], start_response: Callable[..., Any], exc: Exception) -> list[bytes]:
        """The answer to a request that raised: tryLater while the database is unreachable (the
        outage logged once, by the store), internalError, logged, for anything else."""
        reason = outage_reason(exc)
        environ[REASON] = f"{type(exc).__name__}: {exc}" if reason is None else f"the database is unreachable: {reason}"
        if reason is None:
            log.error("OCSP request failed", exc_info=exc)
            return self._send(start_response, error_answer(response.INTERNAL_ERROR), environ)
        err = self.store.outage.report(reason)
        if environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO", "")
            if path in ("", "/"):  # the banner needs no database
                start_response("200 OK", PLAIN)
                return [BANNER]
            if path == "/metrics":  # not an OCSP request: a plain 503 a scraper shows as it is
                start_response("503 Service Unavailable", [*PLAIN, ("Retry-After", "1")])
                return [f"{err}\n".encode()]
        return self._send(start_response, error_answer(response.TRY_LATER), environ)

    def _probe(self, path: str, start_response: Callable[..., Any]) -> list[bytes]:
        """``/healthz``: this process answers (no database read).  ``/readyz``: the database
        answers and a CA is initialised; else 503 with the reason, naming the database."""
        body: dict[str, Any]
        if path == "/healthz":
            body, status = {"status": "alive"}, "200 OK"
        else:
            err = self.store.readiness()
            if err is None:
                body, status = {"status": "ready"}, "200 OK"
            else:
                body, status = {"status": "not_ready", **err.to_dict()}, "503 Service Unavailable"
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = [JSON, ("Content-Length", str(len(data))), ("Cache-Control", "no-store")]
        if status[0] == "5":
            headers.append(("Retry-After", "1"))
        start_response(status, headers)
        return [data]

    def _send(self, start_response: Callable[..., Any], answer: Answer, environ: dict[str, Any],
              party: str = "-") -> list[bytes]:
        now = self._now()
        for kind, status in answer.labels:
            self.counters.add(now, kind, status, party)
        if answer.labels:
            labels = [status for _kind, status in answer.labels]
            environ[LABEL] = labels[0] if len(labels) == 1 else ",".join(dict.fromkeys(labels))
        if answer.entry is not None:
            headers = answer.entry.headers(int(now))
            inm = environ.get("HTTP_IF_NONE_MATCH")
            if inm is not None and etag_matches(inm, headers[-1][1]):  # the ETag is last
                start_response("304 Not Modified", headers[2:])
                return [b""]
        else:
            headers = [CONTENT_TYPE, ("Content-Length", str(len(answer.der)))]
            if answer.http.startswith("503"):
                headers.append(("Retry-After", "1"))
        start_response(answer.http, headers)
        return [answer.der]


def make_app(config: Config, clock: Clock, store: Store, status: StatusReader, keyring: Keyring,
             epoch: RevocationEpoch) -> WSGIApplication:
    """The plug-in factory (mounted by :mod:`jpki_mock.app`, served by :mod:`jpki_mock.server`):
    one responder per worker process, from the parts it reads (configuration, clock, store,
    certificate status, responder signers, revocation epoch).  With ``time_travel = true`` it
    honours ``X-JPKI-Mock-Time`` (docs/time-travel.md); otherwise :func:`jpki_mock.travel.wsgi`
    returns the app itself."""
    app = OcspApp(config, clock, store, status, keyring, epoch)
    app.counters.start(config.ocsp.stats_flush_seconds)
    return timetravel.wsgi(app.wsgi, app)
