"""The pre-signed source: answers kept as bytes within a memory budget, and what a revocation
must drop.

A response with one SingleResponse and no nonce depends only on the CertID, so it is signed
once and served as bytes (EJBCA: "signing becomes the bottleneck") until it is due for
re-signing (``ocsp.refresh_seconds``).  It is found by the certificate's serial number and the
CertID's DER (echoed byte for byte, so the answer itself holds it) and, for the hot path, by
the raw GET path or POST body that asked for it.

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

Memory: ``ocsp.cache_mb`` per process. Answers are evicted one at a time by CLOCK (second
chance): the hand passes over the entries in the order they were stored; one used since the
hand last passed is kept for another round, any other is dropped. At national scale almost
every lookup names a certificate nobody asked about recently (docs/sources.md section 1: about
71.6 million user-authentication lookups in FY2020, 42.01 million cards issued), so an answer
used once must not push out the ones relying parties keep asking about. "Used" costs the hot
path nothing: its once-a-second :meth:`Entry.renew` sets ``hot_until``, which is the reference
bit; the hand clears it to 0.0, so the next hit renews (and marks) again. Eviction is not
invalidation: an evicted answer was correct, and the next lookup signs a fresh one from the
status as it is then, under the same ``seen`` guard. Certificate statuses
(:attr:`Presigned.statuses`) get 1/:data:`STATUS_SHARE` of the budget and are forgotten oldest
first.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from email.utils import formatdate

from jpki_mock.ca.status import CertStatus, Issuer, StatusReader
from jpki_mock.ocsp import stats
from jpki_mock.ocsp.answer import CONTENT_TYPE, Answer, Context, Source
from jpki_mock.ocsp.request import CertID, OcspRequest

#: request bytes one answer is linked to at most (a client re-encodes a request a few ways at most)
MAX_KEYS_PER_ENTRY = 8
#: status changes one sync reads (StatusReader.changes_since's limit); past that it drops everything
SYNC_BATCH = 100_000
#: ``ocsp.cache_mb``'s default, in bytes
DEFAULT_BUDGET = 256 << 20
#: what one stored answer costs besides its DER's length and its request keys, in bytes
#: (CPython 3.11, 64-bit, measured with tracemalloc in tests/ocsp/test_ocsp_cache.py): the DER's
#: bytes header (33), the Entry (13 slots, 136), its place in the serial index (an int key and
#: a dict slot, about 100) and in the CLOCK queue (8), and the GET headers a hit builds (a list,
#: the ETag tuple and string, the float ``hot_until``: about 270).  Charging the headers to every
#: answer, used or not, keeps the budget an upper bound.
ENTRY_BYTES = 560
#: what each request key linked to an answer costs besides its length: the str/bytes header
#: and its slot in the request map
KEY_BYTES = 112
#: the share of the budget for certificate statuses, and what one costs (a CertStatus with its
#: datetimes and municipality, its (ca_id, serial) key and dict slot, its place in the queue)
STATUS_SHARE = 8
STATUS_BYTES = 640


class Stamp:
    """The times every answer signed for one issuer within one second shares (thisUpdate,
    nextUpdate, when to re-sign) and their HTTP-date forms: one object per second instead of
    three floats and two strings per answer."""

    __slots__ = ("cache_control", "expires", "last_modified", "next_update", "refresh_at")

    def __init__(self, this_update: float, next_update: float, refresh_at: float):
        self.next_update = next_update
        self.refresh_at = refresh_at
        self.last_modified = ("Last-Modified", formatdate(this_update, usegmt=True))
        self.expires = ("Expires", formatdate(next_update, usegmt=True))
        #: (second, header) of the Cache-Control header last built: shared by every answer of
        #: this stamp renewed within that second
        self.cache_control: tuple[int, tuple[str, str]] = (-1, ("", ""))

    def max_age(self, now: int) -> tuple[str, str]:
        """RFC 5019 section 6.2 / RFC 9919: max-age counts down to nextUpdate."""
        cached = self.cache_control
        if cached[0] == now:
            return cached[1]
        header = ("Cache-Control",
                  f"max-age={max(0, int(self.next_update) - now)}, public, no-transform, must-revalidate")
        self.cache_control = (now, header)
        return header


#: POST headers by body length: shared, as few lengths occur
_POST_HEADERS: dict[int, list[tuple[str, str]]] = {}
#: the GET headers of an entry no hit renewed yet (never served: ``hot_until`` is 0.0)
_NO_HEADERS: list[tuple[str, str]] = []


def _post_headers(length: int) -> list[tuple[str, str]]:
    headers = _POST_HEADERS.get(length)
    if headers is None:
        headers = _POST_HEADERS.setdefault(length, [CONTENT_TYPE, ("Content-Length", str(length))])
    return headers


class Entry:
    """One pre-signed response and what the HTTP layer needs to serve it, kept compact: the
    DER is the only large object, the times are a shared :class:`Stamp`, and the CertID is
    found inside the DER at offset ``at`` instead of being stored again."""

    __slots__ = (
        "at",
        "der",
        "header_list",
        "hot_until",
        "key",
        "kind",
        "live",
        "more",
        "next",
        "post_headers",
        "serial",
        "slot",
        "stamp",
    )

    def __init__(self, der_bytes: bytes, stamp: Stamp, kind: str, status: str, cid: CertID):
        at = der_bytes.find(cid.der)
        if at < 0:
            raise ValueError("the response does not echo the request's CertID")
        self.der = der_bytes
        self.stamp = stamp
        self.kind = kind
        #: where the hot path counts it (ocsp.stats.SLOTS, in the cache-hit half: ocsp.stats.HIT)
        self.slot = stats.SLOTS[(kind, status)] + stats.HIT
        #: where the CertID starts in ``der`` (its DER is self-delimiting: see :meth:`answers`)
        self.at = at
        #: the certificate's serial number: its key in Presigned's index
        self.serial = cid.serial
        #: the first request linked to it in Presigned.by_request, and the others
        self.key: object = None
        self.more: tuple[object, ...] = ()
        #: the next entry with the same serial (another CertID encoding, another issuer)
        self.next: Entry | None = None
        #: stored and neither invalidated, replaced nor evicted
        self.live = False
        #: a POST gets no caching headers (RFC 5019 section 6.2 is about GET)
        self.post_headers = _post_headers(len(der_bytes))
        #: the GET headers of the second :meth:`renew` last built them for, valid until ``hot_until``
        self.header_list = _NO_HEADERS
        #: the hot path serves ``header_list`` while the clock is below this: the end of that
        #: second, or ``refresh_at`` if sooner.  One float comparison per request covers both
        #: (``int(now)`` per request was a seventh of the cached hot path's own cost).  Not 0.0
        #: also means "used since the CLOCK hand last passed" (the module's docstring).
        self.hot_until = 0.0

    @property
    def status(self) -> str:
        return stats.LABELS[self.slot - stats.HIT][1]

    @property
    def refresh_at(self) -> float:
        return self.stamp.refresh_at

    @property
    def next_update(self) -> float:
        return self.stamp.next_update

    @property
    def etag(self) -> str:
        headers = self.header_list
        return headers[-1][1] if headers else _etag(self.der)

    def answers(self, cid_der: bytes) -> bool:
        """Whether this is the answer about the CertID encoded as ``cid_der``: the bytes at
        :attr:`at` are this answer's CertID, a complete DER value, so a CertID that matches
        them up to its own length is that one."""
        return self.der.startswith(cid_der, self.at)

    def links(self) -> tuple[object, ...]:
        return () if self.key is None else (self.key, *self.more)

    def cost(self) -> int:
        """What this answer holds, for the budget (:data:`ENTRY_BYTES`)."""
        total = ENTRY_BYTES + len(self.der)
        for raw in self.links():
            total += KEY_BYTES + len(raw)  # type: ignore[arg-type]  # str or bytes
        return total

    def headers(self, now: int) -> list[tuple[str, str]]:
        """RFC 5019 section 6.2 / RFC 9919 caching headers at second ``now``: max-age counts
        down to nextUpdate."""
        stamp = self.stamp
        last = self.header_list
        etag = last[-1] if last else ("ETag", _etag(self.der))
        return [*self.post_headers, stamp.max_age(now), stamp.last_modified, stamp.expires, etag]

    def renew(self, now: float) -> bool:
        """For the hot path once ``now`` reached ``hot_until``: False if the entry is due for
        re-signing, else ``header_list`` rebuilt for this second.  (A system clock stepped back
        keeps the later second's headers until then: a max-age a little short, never too long.)"""
        refresh_at = self.stamp.refresh_at
        if now >= refresh_at:
            return False
        sec = int(now)
        self.header_list = self.headers(sec)
        self.hot_until = min(refresh_at, sec + 1.0)
        return True


def _etag(der_bytes: bytes) -> str:
    return '"' + hashlib.sha256(der_bytes).hexdigest()[:32] + '"'


def cacheable(request: OcspRequest, context: Context) -> bool:
    """Whether the answer is kept: one CertID, no nonce to echo, not a time-travelled request
    (its answer is about another time than everybody else's)."""
    return len(request.cert_ids) == 1 and request.nonce_extension is None and not context.pinned


class Presigned:
    """The per-process caches a revocation invalidates: pre-signed entries, the request bytes
    linked to them, and certificate statuses (thread-safe), within ``budget`` bytes."""

    def __init__(self, status: StatusReader, epoch: Sequence[int], sync_batch: int = SYNC_BATCH,
                 budget: int = DEFAULT_BUDGET):
        self.status = status
        self._lock = threading.Lock()
        #: raw GET path (str) or POST body (bytes) -> Entry; only ever cleared in place, never
        #: replaced, so the hot path may hold on to it
        self.by_request: dict[object, Entry] = {}
        #: the hot path's one lookup: the Entry for exactly these request bytes, or None (the
        #: dict's own bound ``get``: a method of ours around it would cost the cached answer a
        #: Python frame)
        self.hit = self.by_request.get
        #: serial -> the live entries about certificates with that serial (a chain through
        #: Entry.next): one per CertID encoding and issuer, usually one
        self._index: dict[int, Entry] = {}
        #: the CLOCK hand's round: stored entries, oldest first (dropped ones leave as it passes)
        self._clock: deque[Entry] = deque()
        #: the bytes the entries in ``_clock`` hold (live or not: a dropped one is freed when it
        #: leaves the queue), and how many of them are dropped
        self.used = 0
        self._dropped = 0
        self.count = 0
        #: bytes for answers; statuses get 1/STATUS_SHARE of ``budget`` besides
        self.budget = budget - budget // STATUS_SHARE
        self.max_statuses = max(64, budget // STATUS_SHARE // STATUS_BYTES)
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        #: (ca_id, serial) -> status of issued certificates (only revocation changes them)
        self.statuses: dict[tuple[int, int], CertStatus] = {}
        #: keys of ``statuses``, oldest first
        self._status_order: deque[tuple[int, int]] = deque()
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
                    for change in changes:
                        key = (change.ca_id, change.serial)
                        self._remember_locked(key, change)
                        self._invalidate_locked(change.serial)
                    self._compact_locked()
            self.seen = seq

    def _invalidate_locked(self, serial: int) -> None:
        """Drop every entry about a certificate with this serial (of any issuer: dropping too
        much is only a re-signature) and every request linked to one."""
        entry = self._index.pop(serial, None)
        while entry is not None:
            self._drop_locked(entry)
            entry = entry.next

    def _drop_locked(self, entry: Entry) -> None:
        """Mark ``entry`` dropped and unlink its requests (those a newer entry took over stay);
        the caller has taken it out of the index.  Its bytes stay counted until the CLOCK hand
        passes it (or :meth:`_compact_locked`): until then the queue still holds it."""
        entry.live = False
        self.count -= 1
        self._dropped += 1
        by_request = self.by_request
        for raw in entry.links():
            if by_request.get(raw) is entry:
                del by_request[raw]

    def _compact_locked(self) -> None:
        """Forget the dropped entries the hand has not reached yet once they outnumber the live
        ones (after many invalidations): the queue stays at most about twice the live entries."""
        if self._dropped <= self.count + 1024:
            return
        kept: deque[Entry] = deque()
        used = 0
        for entry in self._clock:
            if entry.live:
                kept.append(entry)
                used += entry.cost()
        self._clock = kept
        self.used = used
        self._dropped = 0

    def _unchain_locked(self, entry: Entry) -> None:
        """Take ``entry`` out of the index chain of its serial."""
        index = self._index
        head = index.get(entry.serial)
        if head is entry:
            if entry.next is None:
                del index[entry.serial]
            else:
                index[entry.serial] = entry.next
            return
        while head is not None:
            if head.next is entry:
                head.next = entry.next
                return
            head = head.next

    def clear(self) -> None:
        with self._lock:
            self._clear_locked()

    def _clear_locked(self) -> None:
        for entry in self._clock:
            entry.live = False
        self._clock.clear()
        self.by_request.clear()
        self._index.clear()
        self.statuses.clear()
        self._status_order.clear()
        self.used = self._dropped = self.count = 0
        for hook in self.on_clear:
            hook()

    # ------------------------------------------------------------------ entries
    def get(self, cid: CertID, now: float) -> Entry | None:
        """The entry for ``cid`` if it is not due for re-signing at ``now``; marks it used."""
        entry = self._index.get(cid.serial)
        while entry is not None:
            if entry.answers(cid.der):
                if entry.live and entry.renew(now):
                    return entry
                return None
            entry = entry.next
        return None

    def store(self, seen: int, cid: CertID, entry: Entry, raw: object) -> None:
        """Keep ``entry`` for ``cid`` (and the request bytes ``raw``), unless a revocation was
        applied since ``seen`` was read: then it may be stale."""
        with self._lock:
            if self.seen != seen or entry.live:
                return
            index = self._index
            old = index.get(cid.serial)
            while old is not None:  # an entry for the same CertID, stored by a concurrent lookup
                if old.answers(cid.der):
                    self._unchain_locked(old)
                    self._drop_locked(old)
                    break
                old = old.next
            entry.next = index.get(cid.serial)
            index[cid.serial] = entry
            entry.live = True
            self.count += 1
            self.used += ENTRY_BYTES + len(entry.der)
            self._clock.append(entry)
            self._link_locked(raw, entry)
            self._compact_locked()
            self._evict_locked()

    def _evict_locked(self) -> None:
        """CLOCK: while over the budget, the hand takes the oldest entry: a dropped one is
        freed, a used one gets another round (its mark cleared), any other is evicted."""
        clock = self._clock
        # Each entry is passed at most twice (marked, then not); the bound only guards against
        # hot-path threads marking entries again while this runs.
        turns = 2 * len(clock) + 1
        while self.used > self.budget and clock and turns:
            turns -= 1
            entry = clock.popleft()
            if not entry.live:
                self.used -= entry.cost()
                self._dropped -= 1
                continue
            if entry.hot_until:
                entry.hot_until = 0.0
                clock.append(entry)
                continue
            self._unchain_locked(entry)
            self._drop_locked(entry)
            self._dropped -= 1
            self.used -= entry.cost()
            self.evictions += 1

    def link(self, raw: object, entry: Entry) -> None:
        """Serve ``entry`` for the request bytes ``raw`` too, if it is still the current one."""
        with self._lock:
            self._link_locked(raw, entry)
            self._evict_locked()

    def _link_locked(self, raw: object, entry: Entry) -> None:
        by_request = self.by_request
        if raw is None or not entry.live or by_request.get(raw) is entry:
            return
        if entry.key is None:
            entry.key = raw
        elif len(entry.more) < MAX_KEYS_PER_ENTRY - 1:
            entry.more = (*entry.more, raw)
        else:
            return
        by_request[raw] = entry
        self.used += KEY_BYTES + len(raw)  # type: ignore[arg-type]  # str or bytes

    # ------------------------------------------------------------------ statuses
    def _remember_locked(self, key: tuple[int, int], st: CertStatus) -> None:
        statuses = self.statuses
        if key not in statuses:
            order = self._status_order
            order.append(key)
            while len(statuses) >= self.max_statuses and order:
                statuses.pop(order.popleft(), None)
        statuses[key] = st

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
                if self.seen == seen:
                    for serial, st in found.items():
                        self._remember_locked((issuer.id, serial), st)
            out.update(found)
        return out

    def stats(self) -> dict[str, int]:
        return {"presigned": self.count, "request_keys": len(self.by_request), "statuses": len(self.statuses),
                "epoch_seen": self.seen, "cache_bytes": self.used, "cache_budget_bytes": self.budget}


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
                cache.hits += 1
                cache.link(raw, entry)
                return Answer(entry.der, "200 OK", entry, [(entry.kind, entry.status)])
            cache.misses += 1
        answer = self.next.answer(request, context)
        if keep and answer.entry is not None:
            cache.store(seen, request.cert_ids[0], answer.entry, raw)
        return answer


__all__ = [
    "DEFAULT_BUDGET",
    "ENTRY_BYTES",
    "KEY_BYTES",
    "MAX_KEYS_PER_ENTRY",
    "STATUS_BYTES",
    "STATUS_SHARE",
    "SYNC_BATCH",
    "Entry",
    "Presigned",
    "PresignedSource",
    "Stamp",
    "cacheable",
]
