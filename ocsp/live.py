"""The live signer, last source of the chain: misses, entries due for re-signing, nonced and
multi-CertID requests are signed now.

At most ``ocsp.live_sign_concurrency`` signatures run at once per process; past
``ocsp.live_sign_wait_ms`` of waiting for a slot the answer is ``tryLater`` (load shedding
instead of an unbounded queue).  Everything an answer about one issuer's certificates within
one second shares (signer, responderID, producedAt, thisUpdate, nextUpdate) is encoded once
(:class:`LiveFrame`), at the request's own time from its context.

Time order: thisUpdate is backdated by ``ocsp.backdate_seconds`` (clients whose clocks run
behind), but RFC 6960 section 2.4 makes it "the most recent time at which the status being
indicated is known by the responder to have been correct": for a certificate revoked less than
the backdate ago, that cannot be before its revocationTime.  So a revoked SingleResponse's
thisUpdate is max(now - backdate, revocationTime), never later than now: the policy of CRLs'
thisUpdate (crl/writer.py, ``crl.backdate_seconds``).  Each SingleResponse has its own
thisUpdate, so only such a revoked one leaves the frame's; nextUpdate stays the frame's (the
backdating neither lengthens nor shortens an answer's life).
"""

from __future__ import annotations

import queue
from datetime import datetime, timedelta

from jpki_mock.ca.signer import Keyring, ResponderSigner
from jpki_mock.ca.status import HOLD, CertStatus, Issuer
from jpki_mock.clock import UTC
from jpki_mock.config import OcspConfig
from jpki_mock.der import generalized_time, seq
from jpki_mock.errors import Overloaded
from jpki_mock.ocsp import response, stats
from jpki_mock.ocsp.answer import Answer, Context
from jpki_mock.ocsp.filter import Issuers
from jpki_mock.ocsp.presigned import Entry, Presigned, Stamp, cacheable
from jpki_mock.ocsp.request import OcspRequest, Shape
from jpki_mock.vocab import CertState

#: counter labels (ocsp.stats.STATUSES) as plain strings: compared and hashed per answer
GOOD, REVOKED = CertState.GOOD.value, CertState.REVOKED.value
#: the counter label of a serial this CA never issued (RFC 6960 section 2.2's "unknown")
UNKNOWN = "unknown"


class LiveFrame:
    """What every live answer about one issuer's certificates within one second shares: the
    signer, responderID and producedAt, thisUpdate and nextUpdate.  Each answer adds its
    SingleResponses (statuses are read per request, never kept here), its extensions and the
    signature."""

    __slots__ = ("at", "backdated", "head", "next_update", "signer", "stamp", "this_update")

    def __init__(self, at: float, signer: ResponderSigner, head: bytes, this_update: bytes, next_update: bytes,
                 backdated: float):
        #: the request time (POSIX) the frame was built at; it serves the rest of that second
        self.at = at
        self.signer = signer
        #: responderID + producedAt, the start of ResponseData
        self.head = head
        self.this_update = this_update
        #: [0] EXPLICIT nextUpdate, as it follows thisUpdate in a SingleResponse
        self.next_update = next_update
        #: thisUpdate as POSIX seconds: ``at`` - ocsp.backdate_seconds
        self.backdated = backdated
        #: the times of the cacheable answers signed with the frame's thisUpdate (made on first use)
        self.stamp: Stamp | None = None


class SigningSlots:
    """At most ``n`` live signatures at once: a counting semaphore made of a C-level queue of
    tokens.  threading.BoundedSemaphore is pure Python (a Condition around a lock) and cost a
    nonced answer several microseconds per acquire/release pair; ``SimpleQueue.get`` with a
    timeout is one C call that releases the GIL while it waits."""

    def __init__(self, n: int):
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
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


class LiveSigner:
    """Signs answers now (thread-safe).  Statuses come through ``cache`` (Presigned), which
    keeps them until a revocation changes them."""

    def __init__(self, cfg: OcspConfig, keyring: Keyring, cache: Presigned, issuers: Issuers):
        self.cfg = cfg
        self.keyring = keyring
        self.cache = cache
        self.issuers = issuers
        self._signing = SigningSlots(cfg.live_sign_concurrency)
        self._sign_wait = cfg.live_sign_wait_ms / 1000.0
        self._backdate = timedelta(seconds=cfg.backdate_seconds)
        self._validity = timedelta(seconds=cfg.validity_seconds)
        self._unknown_revoked = cfg.unknown_serial == REVOKED
        #: (ca_id, serial) -> status: the cache's dict, only ever cleared in place
        self._statuses = cache.statuses
        #: issuer id -> LiveFrame of the current second
        self._frames: dict[int, LiveFrame] = {}
        cache.on_clear.append(self._frames.clear)

    def _cert_status(self, st: CertStatus | None) -> tuple[bytes, str]:
        """(encoded CertStatus, counter label) of one certificate; ``st`` None: never issued."""
        if st is None:
            # RFC 6960 section 2.2 / 4.4.8: never "good"; revoked (certificateHold, 1970) by policy.
            return (response.revoked(None, HOLD) if self._unknown_revoked else response.UNKNOWN), UNKNOWN
        if st.status == REVOKED:
            return response.revoked(st.revoked_at, st.reason), REVOKED
        return response.GOOD, GOOD

    def _sign(self, signer: ResponderSigner, head: bytes, extensions: bytes) -> bytes:
        """One signature, within the live-signing bound (``tryLater`` past the wait)."""
        if not self._signing.acquire(timeout=self._sign_wait):
            cfg = self.cfg
            raise Overloaded(
                f"all {cfg.live_sign_concurrency} live-signing slots stayed busy for {cfg.live_sign_wait_ms} ms",
                field="ocsp.live_sign_concurrency")
        try:
            return response.sign_response(signer, head, extensions)
        finally:
            self._signing.release()

    def _frame(self, issuer: Issuer, at: float) -> LiveFrame:
        """The LiveFrame of ``issuer`` for the second of ``at`` (a request's time)."""
        frame = self._frames.get(issuer.id)
        if frame is not None and int(frame.at) == int(at):
            return frame
        now = datetime.fromtimestamp(at, UTC)
        produced, tu, nu = response.times(now, self._backdate, self._validity)
        # The signer is looked up (and renewed when due) once a second here; renewal is
        # ocsp.responder_renew_days before expiry, so using it a second longer is harmless.
        signer = self.keyring.responder_signer(issuer.id)
        frame = self._frames[issuer.id] = LiveFrame(at, signer, response.response_head(signer, produced), tu, nu,
                                                    at - self._backdate.total_seconds())
        return frame

    @staticmethod
    def _this_update(frame: LiveFrame, st: CertStatus | None) -> tuple[bytes, float]:
        """(encoded thisUpdate, POSIX seconds) of one SingleResponse: the frame's, unless ``st``
        was revoked after it; then its revocationTime, never later than the request time (a
        revocation recorded at a travelled-forward clock: docs/time-travel.md)."""
        if st is not None and st.revoked_at is not None and st.status == REVOKED:
            revoked = st.revoked_at.timestamp()
            if revoked > frame.backdated:
                when = min(revoked, frame.at)
                return generalized_time(datetime.fromtimestamp(when, UTC)), when
        return frame.this_update, frame.backdated

    def nonced(self, shape: Shape, data: bytes, kinds: frozenset[str] | None, now: float) -> tuple[bytes, int] | None:
        """(answer, its ocsp.stats.SLOTS index) for a nonced request ``data`` about one issued
        certificate, in the shape of one parsed before (:func:`ocsp.request.known_shape`): the
        bytes the chain would sign, in a handful of steps instead of its general ones.

        None when the general path must decide: several CertIDs, an issuer not matched or not
        among the relying party's ``kinds`` (None: access control is off), a status not loaded
        yet.  Callers check first that the nonce policy echoes nonces and that no request time
        is pinned; revocations must have been applied (Presigned.check)."""
        cert_ids = shape.cert_ids
        if len(cert_ids) != 1:
            return None
        cid = cert_ids[0]
        issuer = self.issuers.by_key.get((cid.algorithm, cid.name_hash, cid.key_hash))
        if issuer is None or (kinds is not None and issuer.kind not in kinds):
            return None
        st = self._statuses.get((issuer.id, cid.serial))
        if st is None:
            return None
        status, label = self._cert_status(st)
        frame = self._frame(issuer, now)
        this_update = frame.this_update if label == GOOD else self._this_update(frame, st)[0]
        single = response.single_response(cid.der, status, this_update, frame.next_update)
        signed = self._sign(frame.signer, frame.head + seq(single), data[shape.ext_start:shape.ext_end])
        return signed, stats.SLOTS[(issuer.kind, label)]

    def answer(self, request: OcspRequest, context: Context) -> Answer:
        """Sign the answer to a request the filter passed (``request.issuer`` set).  A
        :func:`~ocsp.presigned.cacheable` one comes with its Entry, for the pre-signed source."""
        cfg = self.cfg
        issuer = request.issuer
        cert_ids = request.cert_ids
        statuses = self.cache.statuses_of(issuer, [c.serial for c in cert_ids], self.cache.seen)
        frame = self._frame(issuer, context.at)
        singles, labels = [], []
        never_issued = False
        tu_ts = frame.backdated
        for cid in cert_ids:
            st = statuses.get(cid.serial)
            status, label = self._cert_status(st)
            never_issued |= label == UNKNOWN
            labels.append((issuer.kind, label))
            this_update, tu_ts = self._this_update(frame, st)
            singles.append(response.single_response(cid.der, status, this_update, frame.next_update))
        extensions = response.EXTENDED_REVOKE_EXTENSION if never_issued and self._unknown_revoked else b""
        if request.nonce_extension is not None:
            extensions += request.nonce_extension
        body = self._sign(frame.signer, frame.head + seq(*singles), extensions)
        if never_issued or not cacheable(request, context):
            return Answer(body, "200 OK", None, labels)
        # One SingleResponse: Last-Modified is its thisUpdate (RFC 5019 section 6.2).  Answers
        # with the frame's thisUpdate share one Stamp; a recently revoked one has its own.
        stamp = frame.stamp if tu_ts == frame.backdated else None
        if stamp is None:
            nu_ts = frame.backdated + cfg.validity_seconds
            stamp = Stamp(tu_ts, nu_ts, min(frame.at + cfg.refresh_seconds, nu_ts))
            if tu_ts == frame.backdated:
                frame.stamp = stamp
        entry = Entry(body, stamp, issuer.kind, labels[0][1], cert_ids[0])
        return Answer(body, "200 OK", entry, labels)


__all__ = ["LiveFrame", "LiveSigner", "SigningSlots"]
