"""The pre-signed source: answers kept as bytes, and what a revocation must drop.

A response with one SingleResponse and no nonce depends only on the CertID, so it is signed
once and served as bytes (EJBCA: "signing becomes the bottleneck") until it is due for
re-signing (``ocsp.refresh_seconds``).  It is keyed by the CertID's DER (echoed byte for byte)
and, for the hot path, by the raw GET path or POST body that asked for it.

Revocation invalidates: every request first compares the revocation epoch (an 8-byte mmap
read, or the database sequence with ``ocsp.revocation_check = "database"``) with the last one
this process applied; when it moved, :meth:`Presigned.sync` fetches the changed certificates
and drops every entry about them (each CertID encoding: SHA-1, SHA-256, ...) and every request
linked to one, before anything is served.  Revocations publish the epoch after their commit
and before they return, so no request that arrives after a revoke returned can see the old
epoch.  Anything computed from state read before a sync is not stored (the ``seen`` guard), so
a slow signer cannot put a stale "good" back.  Concurrent first lookups of one certificate
(by GET and by POST, say) each sign and store: an entry that replaces another takes over the
CertID and unlinks the other's requests, so nothing stays reachable that invalidation misses.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from email.utils import formatdate

from jpki_mock.ca.status import CertStatus, Issuer, StatusReader
from jpki_mock.ocsp import stats
from jpki_mock.ocsp.answer import CONTENT_TYPE, Answer, Context, Source
from jpki_mock.ocsp.request import CertID, OcspRequest

#: bounds on the per-process maps: a flood of distinct requests must not exhaust memory.
MAX_ENTRIES = 500_000
MAX_REQUEST_KEYS = 500_000
MAX_KEYS_PER_ENTRY = 8
#: status changes one sync reads (StatusReader.changes_since's limit); past that it drops everything
SYNC_BATCH = 100_000


class Entry:
    """One pre-signed response and what the HTTP layer needs to serve it."""

    __slots__ = (
        "der",
        "etag",
        "expires",
        "header_list",
        "hot_until",
        "keys",
        "kind",
        "last_modified",
        "next_update",
        "post_headers",
        "refresh_at",
        "slot",
        "status",
    )

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
        #: the raw requests linked to it in Presigned.by_request
        self.keys: list[object] = []
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


def cacheable(request: OcspRequest, context: Context) -> bool:
    """Whether the answer is kept: one CertID, no nonce to echo, not a time-travelled request
    (its answer is about another time than everybody else's)."""
    return len(request.cert_ids) == 1 and request.nonce_extension is None and not context.pinned


class Presigned:
    """The per-process caches a revocation invalidates: pre-signed entries, the request bytes
    linked to them, and certificate statuses (thread-safe)."""

    def __init__(self, status: StatusReader, epoch: Sequence[int], sync_batch: int = SYNC_BATCH):
        self.status = status
        self._lock = threading.Lock()
        #: CertID DER -> Entry
        self.presigned: dict[bytes, Entry] = {}
        #: raw GET path (str) or POST body (bytes) -> Entry; only ever cleared in place, never
        #: replaced, so the hot path may hold on to it
        self.by_request: dict[object, Entry] = {}
        #: the hot path's one lookup: the Entry for exactly these request bytes, or None (the
        #: dict's own bound ``get``: a method of ours around it would cost the cached answer a
        #: Python frame)
        self.hit = self.by_request.get
        #: (ca_id, serial) -> CertID DERs with a pre-signed entry, each once, for invalidation
        self._index: dict[tuple[int, int], list[bytes]] = {}
        #: (ca_id, serial) -> status of issued certificates (only revocation changes them)
        self.statuses: dict[tuple[int, int], CertStatus] = {}
        #: item 0 is the revocation sequence number now: the shared epoch, or the database's
        self.epoch = epoch
        #: the revocation sequence number applied last
        self.seen = epoch[0]
        #: most status changes one :meth:`sync` reads; past that it drops every cache instead
        self.sync_batch = sync_batch
        #: called with no argument whenever everything is dropped (the live signer's frames)
        self.on_clear: list[Callable[[], None]] = []

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
                self._clear_locked()
            else:
                changes = self.status.changes_since(self.seen, limit=self.sync_batch)
                if len(changes) >= self.sync_batch:
                    # More changes than one read returns (a seeding run, a mass revocation).
                    # Dropping everything is correct whatever else changed, costs no further
                    # reads while every request of this process waits for this lock, and keeps
                    # the maps bounded; the hot set is signed again on its next lookups.
                    self._clear_locked()
                else:
                    statuses = self.statuses
                    for change in changes:
                        key = (change.ca_id, change.serial)
                        if len(statuses) < MAX_ENTRIES:
                            statuses[key] = change
                        else:
                            statuses.pop(key, None)
                        self._invalidate_locked(key)
            self.seen = seq

    def _invalidate_locked(self, key: tuple[int, int]) -> None:
        """Drop every entry about certificate ``key`` and every request linked to one."""
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

    def clear(self) -> None:
        with self._lock:
            self._clear_locked()

    def _clear_locked(self) -> None:
        self.presigned.clear()
        self.by_request.clear()
        self._index.clear()
        self.statuses.clear()
        for hook in self.on_clear:
            hook()

    # ------------------------------------------------------------------ entries
    def get(self, cid: CertID, now: float) -> Entry | None:
        """The entry for ``cid`` if it is not due for re-signing at ``now``."""
        entry = self.presigned.get(cid.der)
        return entry if entry is not None and entry.refresh_at > now else None

    def store(self, seen: int, cid: CertID, ca_id: int, entry: Entry, raw: object) -> None:
        """Keep ``entry`` for ``cid`` (and the request bytes ``raw``), unless a revocation was
        applied since ``seen`` was read: then it may be stale."""
        with self._lock:
            if self.seen != seen:
                return
            if len(self.presigned) >= MAX_ENTRIES:
                self._clear_locked()
            old = self.presigned.get(cid.der)
            if old is not None and old is not entry:
                self._unlink_locked(old)
            self.presigned[cid.der] = entry
            ders = self._index.setdefault((ca_id, cid.serial), [])
            if cid.der not in ders:
                ders.append(cid.der)
            self._link_locked(raw, entry)

    def link(self, raw: object, cid: CertID, entry: Entry) -> None:
        """Serve ``entry`` for the request bytes ``raw`` too, if it is still the current one."""
        with self._lock:
            if self.presigned.get(cid.der) is entry:  # not invalidated or replaced meanwhile
                self._link_locked(raw, entry)

    def _link_locked(self, raw: object, entry: Entry) -> None:
        by_request = self.by_request
        if raw is None or len(entry.keys) >= MAX_KEYS_PER_ENTRY or by_request.get(raw) is entry:
            return
        if len(by_request) >= MAX_REQUEST_KEYS:
            by_request.clear()
        by_request[raw] = entry
        entry.keys.append(raw)

    # ------------------------------------------------------------------ statuses
    def statuses_of(self, issuer: Issuer, serials: list[int], seen: int) -> dict[int, CertStatus]:
        """Status of each issued certificate among ``serials`` (never-issued ones are absent);
        read from the store when not known, and kept unless a sync happened since ``seen``."""
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
                st = self.status.lookup(issuer.id, missing[0])
                found = {missing[0]: st} if st is not None else {}
            else:
                found = self.status.lookup_many(issuer.id, missing)
            # Never-issued serials are not remembered: issuing one does not move the epoch.
            with self._lock:
                if self.seen == seen and len(self.statuses) < MAX_ENTRIES:
                    for serial, st in found.items():
                        self.statuses[(issuer.id, serial)] = st
            out.update(found)
        return out

    def stats(self) -> dict[str, int]:
        return {"presigned": len(self.presigned), "request_keys": len(self.by_request),
                "statuses": len(self.statuses), "epoch_seen": self.seen}


class PresignedSource:
    """Answers from :class:`Presigned`; asks ``next`` (the live signer) otherwise and keeps
    what it signed when the answer is :func:`cacheable`."""

    def __init__(self, cache: Presigned, next_source: Source):
        self.cache = cache
        self.next = next_source

    def answer(self, request: OcspRequest, context: Context) -> Answer:
        cache = self.cache
        # Read before anything below reads the store: see Presigned.store.
        seen = cache.seen
        keep = cacheable(request, context)
        # A nonced request (even with its nonce ignored) is never repeated: its bytes are not remembered.
        raw = context.raw if request.nonce is None else None
        if keep:
            cid = request.cert_ids[0]
            entry = cache.get(cid, context.at)
            if entry is not None:
                cache.link(raw, cid, entry)
                return Answer(entry.der, "200 OK", entry, [(entry.kind, entry.status)])
        answer = self.next.answer(request, context)
        if keep and answer.entry is not None:
            cache.store(seen, request.cert_ids[0], request.issuer.id, answer.entry, raw)
        return answer


__all__ = [
    "MAX_ENTRIES",
    "MAX_KEYS_PER_ENTRY",
    "MAX_REQUEST_KEYS",
    "SYNC_BATCH",
    "Entry",
    "Presigned",
    "PresignedSource",
    "cacheable",
]
