"""Where answers come from, layered as in Boulder: filter -> pre-signed cache -> live signer.

* Filter: match each CertID's issuer by its precomputed (algorithm, name hash, key hash)
  over every CA generation; unknown issuers are ``unauthorized`` (RFC 5019 section 2.2.3).
* Pre-signed cache: a response with one SingleResponse and no nonce depends only on the
  CertID, so it is signed once and served as bytes (EJBCA: "signing becomes the bottleneck").
  Keyed by the CertID's DER (echoed byte for byte) and, for the hot path, by the raw GET path
  or POST body that asked for it.
* Live signer: misses, stale entries, nonced and multi-CertID requests; at most
  ``ocsp.live_sign_concurrency`` signatures at once per process, ``tryLater`` past
  ``ocsp.live_sign_wait_ms`` of waiting (load shedding instead of an unbounded queue).

Revocation invalidates: every request first compares the revocation epoch (an 8-byte mmap
read, or the database sequence with ``ocsp.revocation_check = "database"``) with the last
one this process applied; when it moved, :meth:`Responder.sync` fetches the changed
certificates and drops their responses before anything is served.  Revocations publish the
epoch after their commit and before they return, so no request that arrives after a revoke
returned can see the old epoch.  Entries computed from state read before a sync are not
stored (``seen`` guard), so a slow signer cannot put a stale "good" back into the cache.
"""

from __future__ import annotations

from typing import Any

import hashlib
import queue
import threading
from datetime import timedelta
from email.utils import formatdate
from time import time as _time

from sqlalchemy import func, select

from jpki_mock import travel as timetravel
from jpki_mock.clock import SystemClock
from jpki_mock.epoch import CallCell
from jpki_mock.errors import Overloaded
from jpki_mock.ca.issuers import HASH_ALGORITHMS, Issuer
from jpki_mock.ca.models import CAGeneration
from jpki_mock.ca.status import HOLD, CertStatus

from jpki_mock.ocsp import response, stats
from jpki_mock.ocsp.der import seq
from jpki_mock.ocsp.request import CertID, MalformedRequest, OcspRequest, Shape

#: bounds on the per-process maps: a flood of distinct requests must not exhaust memory.
MAX_ENTRIES = 500_000
MAX_REQUEST_KEYS = 500_000
MAX_KEYS_PER_ENTRY = 8
#: status changes read per sync (StatusReader.changes_since's limit)
SYNC_BATCH = 100_000


CONTENT_TYPE = ("Content-Type", "application/ocsp-response")


class Entry:
    """One pre-signed response and what the HTTP layer needs to serve it."""

    __slots__ = ("der", "etag", "last_modified", "expires", "next_update", "refresh_at", "kind", "status", "slot",
                 "keys", "post_headers", "header_list", "hot_until")

    def __init__(self, der_bytes: bytes, this_update: float, next_update: float, refresh_at: float, kind: str,
                 status: str):
        self.der = der_bytes
        self.etag = '"' + hashlib.sha256(der_bytes).hexdigest()[:32] + '"'
        self.last_modified = formatdate(this_update, usegmt=True)
        self.expires = formatdate(next_update, usegmt=True)
        self.next_update = next_update
        self.refresh_at = refresh_at
        self.kind = kind
        self.status = status
        #: where the hot path counts it (ocsp.stats.SLOTS)
        self.slot = stats.SLOTS[(kind, status)]
        self.keys: list = []
        #: a POST gets no caching headers (RFC 5019 section 6.2 is about GET)
        self.post_headers = [CONTENT_TYPE, ("Content-Length", str(len(der_bytes)))]
        #: the GET headers of the second :meth:`renew` last built them for, valid until ``hot_until``
        self.header_list: list[tuple[str, str]] = []
        #: the hot path serves ``header_list`` while the clock is below this: the end of that
        #: second, or ``refresh_at`` if sooner.  One float comparison per request covers both
        #: (``int(now)`` per request was a seventh of the cached hot path's own cost).
        self.hot_until = 0.0

    def headers(self, now: int) -> list[tuple[str, str]]:
        """RFC 5019 section 6.2 / RFC 9919 caching headers at second ``now``: max-age counts
        down to nextUpdate."""
        return [
            *self.post_headers,
            ("Cache-Control", f"max-age={max(0, int(self.next_update) - now)}, public, no-transform, must-revalidate"),
            ("Last-Modified", self.last_modified),
            ("Expires", self.expires),
            ("ETag", self.etag),
        ]

    def renew(self, now: float) -> bool:
        """For the hot path once ``now`` reached ``hot_until``: False if the entry is due for
        re-signing, else ``header_list`` rebuilt for this second.  (A system clock stepped back
        keeps the later second's headers until then: a max-age a little short, never too long.)"""
        if now >= self.refresh_at:
            return False
        sec = int(now)
        self.header_list = self.headers(sec)
        self.hot_until = min(self.refresh_at, sec + 1.0)
        return True


class Answer:
    """A response to send: bytes, HTTP status, the cacheable entry (for headers) and what to count."""

    __slots__ = ("der", "http", "entry", "labels")

    def __init__(self, der_bytes: bytes, http: str = "200 OK", entry: Entry | None = None,
                 labels: list[tuple[str, str]] | None = None):
        self.der = der_bytes
        self.http = http
        self.entry = entry
        self.labels = labels or []


HTTP_FOR_STATUS = {
    response.MALFORMED_REQUEST: "400 Bad Request",
    response.INTERNAL_ERROR: "500 Internal Server Error",
    response.TRY_LATER: "503 Service Unavailable",
    response.UNAUTHORIZED: "200 OK",
}
LABEL_FOR_STATUS = {
    response.MALFORMED_REQUEST: "malformedRequest",
    response.INTERNAL_ERROR: "internalError",
    response.TRY_LATER: "tryLater",
    response.UNAUTHORIZED: "unauthorized",
}
ERROR_BODIES = {status: response.error_response(status) for status in HTTP_FOR_STATUS}


def error_answer(status: int, kind: str = "-", http: str | None = None) -> Answer:
    return Answer(ERROR_BODIES[status], http or HTTP_FOR_STATUS[status], None, [(kind, LABEL_FOR_STATUS[status])])


class LiveFrame:
    """What every live answer about one issuer's certificates within one second shares: the
    signer, responderID and producedAt, thisUpdate and nextUpdate.  Each answer adds its
    SingleResponses (statuses are read per request, never kept here), its extensions and the
    signature."""

    __slots__ = ("at", "signer", "head", "this_update", "next_update")

    def __init__(self, at: float, signer, head: bytes, this_update: bytes, next_update: bytes):
        #: the clock's time (POSIX) the frame was built at; it serves the rest of that second
        self.at = at
        self.signer = signer
        #: responderID + producedAt, the start of ResponseData
        self.head = head
        self.this_update = this_update
        #: [0] EXPLICIT nextUpdate, as it follows thisUpdate in a SingleResponse
        self.next_update = next_update


class SigningSlots:
    """At most ``n`` live signatures at once: a counting semaphore made of a C-level queue of
    tokens.  threading.BoundedSemaphore is pure Python (a Condition around a lock) and cost a
    nonced answer several microseconds per acquire/release pair; ``SimpleQueue.get`` with a
    timeout is one C call that releases the GIL while it waits."""

    def __init__(self, n: int):
        self._tokens: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(n):
            self._tokens.put(None)

    def acquire(self, timeout: float | None = None) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds (None: as long as it takes)."""
        try:
            self._tokens.get(timeout=timeout)
        except queue.Empty:
            return False
        return True

    def release(self) -> None:
        self._tokens.put(None)


class Responder:
    """The answering core of one process (thread-safe; one per WSGI app)."""

    def __init__(self, rt: Any):
        self.rt = rt
        self.cfg = rt.config.ocsp
        self._lock = threading.Lock()
        self._signing = SigningSlots(self.cfg.live_sign_concurrency)
        self._sign_wait = self.cfg.live_sign_wait_ms / 1000.0
        self._backdate = timedelta(seconds=self.cfg.backdate_seconds)
        self._validity = timedelta(seconds=self.cfg.validity_seconds)
        #: CertID DER -> Entry
        self.presigned: dict[bytes, Entry] = {}
        #: raw GET path (str) or POST body (bytes) -> Entry; the hot path is one lookup here
        self.by_request: dict[object, Entry] = {}
        #: (ca_id, serial) -> CertID DERs with a pre-signed entry, for invalidation
        self._index: dict[tuple[int, int], list[bytes]] = {}
        #: (ca_id, serial) -> status of issued certificates (only revocation changes them)
        self.statuses: dict[tuple[int, int], CertStatus] = {}
        #: issuer id -> LiveFrame of the current second
        self._frames: dict[int, LiveFrame] = {}
        #: item 0 is the revocation sequence number now: the shared epoch, or the database's
        self.epoch = rt.epoch.cell() if self.cfg.revocation_check == "epoch" else CallCell(rt.status.current_seq)
        self.seen = self.epoch[0]
        #: most status changes one :meth:`sync` reads; past that it drops every cache instead
        self.sync_batch = SYNC_BATCH
        self._issuers: dict[tuple[str, bytes, bytes], Issuer] = {}
        self._issuers_latest = 0
        self.load_issuers()

    # ------------------------------------------------------------------ filter
    def _latest_generation(self) -> int:
        with self.rt.store.engine.connect() as conn:
            return int(conn.execute(select(func.max(CAGeneration.id))).scalar() or 0)

    def load_issuers(self) -> None:
        index = {}
        latest = self._latest_generation()
        for issuer in self.rt.status.issuers():
            for alg in HASH_ALGORITHMS:
                index[(alg, issuer.name_hash[alg], issuer.key_hash[alg])] = issuer
        self._issuers = index
        self._issuers_latest = latest

    def match(self, cid: CertID) -> Issuer | None:
        key = (cid.algorithm, cid.name_hash, cid.key_hash)
        issuer = self._issuers.get(key)
        if issuer is None and cid.algorithm is not None and self._latest_generation() != self._issuers_latest:
            # `ca rollover` added a generation since these were loaded (one indexed read per
            # unmatched CertID; the matched ones cost nothing).
            with self._lock:
                self.load_issuers()
            issuer = self._issuers.get(key)
        return issuer

    # ------------------------------------------------------------------ invalidation
    def check(self) -> None:
        """Apply revocations published since the last request (call before serving anything)."""
        if self.epoch[0] != self.seen:
            self.sync()

    def sync(self) -> None:
        with self._lock:
            seq = self.epoch[0]
            if seq == self.seen:
                return
            if seq < self.seen:  # the epoch file was recreated: start over
                self._clear()
            else:
                changes = self.rt.status.changes_since(self.seen, limit=self.sync_batch)
                if len(changes) >= self.sync_batch:
                    # More changes than one read returns (a seeding run, a mass revocation):
                    # dropping everything is correct whatever else changed, costs no further
                    # reads while every request waits for this lock, and keeps the maps
                    # bounded; the hot set is signed again on its next lookups.
                    self._clear()
                else:
                    for change in changes:
                        key = (change.ca_id, change.serial)
                        if len(self.statuses) < MAX_ENTRIES:
                            self.statuses[key] = change
                        else:
                            self.statuses.pop(key, None)
                        self._invalidate_locked(key)
            self.seen = seq

    def _invalidate_locked(self, key: tuple[int, int]) -> None:
        """Drop every pre-signed entry about certificate ``key`` (each CertID encoding of it)
        and every request linked to one of them."""
        for cid_der in self._index.pop(key, ()):
            entry = self.presigned.pop(cid_der, None)
            if entry is not None:
                self._unlink_locked(entry)

    def _unlink_locked(self, entry: Entry) -> None:
        """Remove the request links of ``entry`` (those a newer entry took over stay)."""
        by_request = self.by_request
        for raw in entry.keys:
            if by_request.get(raw) is entry:
                del by_request[raw]
        entry.keys.clear()

    def _clear(self) -> None:
        self._frames.clear()
        self.presigned.clear()
        self.by_request.clear()
        self._index.clear()
        self.statuses.clear()

    def _store(self, seen: int, cid: CertID, ca_id: int, entry: Entry, raw: object) -> None:
        with self._lock:
            if self.seen != seen:
                return  # a revocation was applied while this entry was being made: it may be stale
            if len(self.presigned) >= MAX_ENTRIES:
                self._clear()
            old = self.presigned.get(cid.der)
            if old is not None and old is not entry:
                # Concurrent first lookups of one CertID (by GET and by POST, say) each sign and
                # store: the replaced entry's requests must not keep serving it, since
                # invalidation reaches entries through ``presigned`` only.
                self._unlink_locked(old)
            self.presigned[cid.der] = entry
            ders = self._index.setdefault((ca_id, cid.serial), [])
            if cid.der not in ders:
                ders.append(cid.der)
            self._link_locked(raw, entry)

    def link(self, raw: object, cid: CertID, entry: Entry) -> None:
        with self._lock:
            if self.presigned.get(cid.der) is entry:  # not invalidated meanwhile
                self._link_locked(raw, entry)

    def _link_locked(self, raw: object, entry: Entry) -> None:
        if raw is None or len(entry.keys) >= MAX_KEYS_PER_ENTRY or self.by_request.get(raw) is entry:
            return
        if len(self.by_request) >= MAX_REQUEST_KEYS:
            self.by_request.clear()
        self.by_request[raw] = entry
        entry.keys.append(raw)

    # ------------------------------------------------------------------ statuses
    def statuses_of(self, issuer: Issuer, serials: list[int], seen: int) -> dict[int, CertStatus]:
        out: dict[int, CertStatus] = {}
        missing = []
        for serial in serials:
            st = self.statuses.get((issuer.id, serial))
            if st is None:
                missing.append(serial)
            else:
                out[serial] = st
        if missing:
            if len(missing) == 1:
                st = self.rt.status.lookup(issuer.id, missing[0])
                found = {missing[0]: st} if st is not None else {}
            else:
                found = self.rt.status.lookup_many(issuer.id, missing)
            # Never-issued serials are not remembered: issuing one does not move the epoch.
            with self._lock:
                if self.seen == seen and len(self.statuses) < MAX_ENTRIES:
                    for serial, st in found.items():
                        self.statuses[(issuer.id, serial)] = st
            out.update(found)
        return out

    # ------------------------------------------------------------------ answering
    def answer(self, req: OcspRequest, party, raw: object = None) -> Answer:
        """Answer a parsed request; ``party`` is the relying party (access control) or None.

        Raises MalformedRequest (nonce required but absent); store failures propagate to the
        HTTP layer, which answers internalError."""
        cfg = self.cfg
        if cfg.nonce_policy == "require" and req.nonce is None:
            raise MalformedRequest("this responder requires a nonce (RFC 9654)", field="nonce",
                                   allowed="a nonce extension of 1-128 octets")
        nonce_ext = None if cfg.nonce_policy == "ignore" else req.nonce_extension
        pinned = timetravel.pinned() is not None
        if req.nonce is not None or pinned:
            raw = None  # a nonced (or time-travelled) request is never repeated: do not remember its bytes
        issuer = None
        for cid in req.cert_ids:
            matched = self.match(cid)
            if matched is None:
                return error_answer(response.UNAUTHORIZED)
            if issuer is not None and matched.id != issuer.id:
                # One BasicOCSPResponse has one signer, and a delegated responder is authorised
                # for one CA generation only (RFC 6960 section 4.2.2.2).
                return error_answer(response.UNAUTHORIZED, matched.kind)
            issuer = matched
        assert issuer is not None
        if cfg.access_control and (party is None or not party.may_query(issuer.kind)):
            return error_answer(response.UNAUTHORIZED, issuer.kind)
        seen = self.seen
        # A response about one certificate without a nonce depends on nothing but that
        # certificate: it is pre-signed and served as bytes (time-travelled ones excepted).
        cacheable = len(req.cert_ids) == 1 and nonce_ext is None and not pinned
        if cacheable:
            cid = req.cert_ids[0]
            entry = self.presigned.get(cid.der)
            if entry is not None and entry.refresh_at > self.now():
                self.link(raw, cid, entry)
                return Answer(entry.der, "200 OK", entry, [(entry.kind, entry.status)])
        statuses = self.statuses_of(issuer, [c.serial for c in req.cert_ids], seen)
        return self._live(issuer, req.cert_ids, statuses, nonce_ext, seen, raw, cacheable)

    def now(self) -> float:
        """The injected clock's time as a POSIX timestamp; time.time() itself for the system
        clock, which saves building a datetime on every request."""
        clock = self.rt.clock
        return _time() if clock.__class__ is SystemClock else clock.now().timestamp()

    def _cert_status(self, issuer: Issuer, st: CertStatus | None) -> tuple[bytes, str]:
        """(encoded CertStatus, counter label) of one certificate; ``st`` None: never issued."""
        if st is None:
            # RFC 6960 section 2.2 / 4.4.8: never "good"; revoked (certificateHold, 1970) by policy.
            return (response.revoked(None, HOLD) if self.cfg.unknown_serial == "revoked" else response.UNKNOWN), "unknown"
        if st.status == "revoked":
            return response.revoked(st.revoked_at, st.reason), "revoked"
        return response.GOOD, "good"

    def _sign(self, signer, head: bytes, extensions: bytes) -> bytes:
        """One signature, within the live-signing bound (``tryLater`` past the wait)."""
        if not self._signing.acquire(timeout=self._sign_wait):
            cfg = self.cfg
            raise Overloaded(f"all {cfg.live_sign_concurrency} live-signing slots stayed busy for {cfg.live_sign_wait_ms} ms",
                             field="ocsp.live_sign_concurrency")
        try:
            return response.sign_response(signer, head, extensions)
        finally:
            self._signing.release()

    def _frame(self, issuer: Issuer, now: float | None = None) -> LiveFrame:
        """The LiveFrame of ``issuer`` for the clock's current second (time travel included);
        ``now``: the clock's time when the caller has just read it."""
        frame = self._frames.get(issuer.id)
        if frame is not None and int(frame.at) == int(self.now() if now is None else now):
            return frame
        now = self.rt.clock.now()
        produced, tu, nu = response.times(now, self._backdate, self._validity)
        # The signer is looked up (and renewed when due) once a second here; renewal is
        # ocsp.responder_renew_days before expiry, so using it a second longer is harmless.
        signer = self.rt.keyring.responder_signer(issuer.id)
        frame = self._frames[issuer.id] = LiveFrame(now.timestamp(), signer, response.response_head(signer, produced),
                                                    tu, nu)
        return frame

    def nonced(self, shape: Shape, data: bytes, kinds: frozenset | None, now: float) -> tuple[bytes, int] | None:
        """(answer, its ocsp.stats.SLOTS index) for a nonced request ``data`` about one issued
        certificate, in the shape of one parsed before (:func:`ocsp.request.known_shape`): the
        bytes :meth:`answer` signs, in a handful of steps instead of its general ones.

        None when the general path must decide: several CertIDs, an issuer not matched or not
        among the relying party's ``kinds`` (None: access control is off), a status not loaded
        yet.  Callers check first that the nonce policy echoes nonces and that no request time
        is pinned; revocations must have been applied (:meth:`check`)."""
        cert_ids = shape.cert_ids
        if len(cert_ids) != 1:
            return None
        cid = cert_ids[0]
        issuer = self._issuers.get((cid.algorithm, cid.name_hash, cid.key_hash))
        if issuer is None or (kinds is not None and issuer.kind not in kinds):
            return None
        st = self.statuses.get((issuer.id, cid.serial))
        if st is None:
            return None
        status, label = self._cert_status(issuer, st)
        frame = self._frame(issuer, now)
        single = response.single_response(cid.der, status, frame.this_update, frame.next_update)
        signed = self._sign(frame.signer, frame.head + seq(single), data[shape.ext_start:shape.ext_end])
        return signed, stats.SLOTS[(issuer.kind, label)]

    def _live(self, issuer: Issuer, cert_ids, statuses, nonce_ext, seen, raw, cacheable: bool) -> Answer:
        """Sign an answer now: misses, stale entries, nonced and multi-CertID requests.  A
        ``cacheable`` one (see :meth:`answer`) is kept, linked to the request bytes ``raw``."""
        cfg = self.cfg
        frame = self._frame(issuer)
        singles, labels = [], []
        never_issued = False
        for cid in cert_ids:
            status, label = self._cert_status(issuer, statuses.get(cid.serial))
            never_issued |= label == "unknown"
            labels.append((issuer.kind, label))
            singles.append(response.single_response(cid.der, status, frame.this_update, frame.next_update))
        extensions = response.EXTENDED_REVOKE_EXTENSION if never_issued and cfg.unknown_serial == "revoked" else b""
        if nonce_ext is not None:
            extensions += nonce_ext
        body = self._sign(frame.signer, frame.head + seq(*singles), extensions)
        if not cacheable or never_issued:
            return Answer(body, "200 OK", None, labels)
        tu_ts = frame.at - cfg.backdate_seconds
        nu_ts = tu_ts + cfg.validity_seconds
        entry = Entry(body, tu_ts, nu_ts, min(frame.at + cfg.refresh_seconds, nu_ts), issuer.kind, labels[0][1])
        self._store(seen, cert_ids[0], issuer.id, entry, raw)
        return Answer(body, "200 OK", entry, labels)

    def stats(self) -> dict[str, int]:
        return {"presigned": len(self.presigned), "request_keys": len(self.by_request),
                "statuses": len(self.statuses), "epoch_seen": self.seen}


__all__ = ["Responder", "Entry", "Answer", "Overloaded", "error_answer"]
