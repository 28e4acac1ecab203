"""The responder while the database is unreachable: answers still known are served, within a
bound; everything else is ``tryLater`` (RFC 6960 section 2.3: "the server is temporarily unable
to respond"), HTTP 503 with Retry-After, never internalError.

With ``ocsp.revocation_check = "epoch"`` the revocation sequence is an mmap'd file that an
outage does not touch, so pre-signed answers keep being served as they are: no revocation can
commit while the database is down.  With ``"database"`` every request reads the sequence from
the database; :class:`SequenceRead` is that read, and when it fails it hands back the last value
it read for at most ``ocsp.outage_grace_seconds`` after that read.  So an answer served during an
outage reflects the status as of the last successful read, never older than the grace: a
revocation committed in the moment before the outage is seen at the latest when the grace ends
(then every answer is tryLater).  A status or a signature the process does not hold in memory
needs the database and is tryLater at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from jpki_mock.db import Outage, outage_reason, unavailable

#: seconds between two attempts to read the sequence while the database is down: a refused
#: connection costs little, but an unreachable host costs a connection timeout, and the first
#: request after PostgreSQL is back should find it within a tenth of a second.
PROBE_SECONDS = 0.1


class SequenceRead(Sequence[int]):
    """The database's revocation sequence number as item 0 (the shape the hot path reads: the
    epoch's :meth:`~jpki_mock.epoch.RevocationEpoch.cell`), read on every request and carried
    through an outage for at most ``grace`` seconds.  Raises StoreUnavailable past that."""

    def __init__(self, read: Callable[[], int], grace: float, outage: Outage,
                 clock: Callable[[], float] = time.monotonic, probe_seconds: float = PROBE_SECONDS):
        self.read = read
        self.grace = grace
        self.outage = outage
        self.clock = clock
        self.probe_seconds = probe_seconds
        #: (value, clock time the read that returned it started), the latest-started read
        self._last: tuple[int, float] | None = None
        self._last_lock = threading.Lock()
        #: while the database is down: (the reason, when to try it again); None otherwise
        self._down: tuple[str, float] | None = None
        #: only one thread at a time tries the database during an outage; the others answer
        #: from the last value at once instead of queueing behind a connection timeout
        self._probe_lock = threading.Lock()

    def __getitem__(self, index: int) -> int:  # type: ignore[override]  # item 0 only, no slices
        if index != 0:
            raise IndexError(index)
        down = self._down
        if down is not None:
            start = self.clock()
            if start < down[1] or not self._probe_lock.acquire(blocking=False):
                return self._carried(start, down[0])
            try:
                return self._read(start)
            finally:
                self._probe_lock.release()
        return self._read(self.clock())

    def __len__(self) -> int:
        return 1

    def _read(self, start: float) -> int:
        try:
            value = self.read()
        except Exception as exc:  # classified: only an outage is carried through
            reason = outage_reason(exc)
            if reason is None:
                raise
            self.outage.report(reason, failed=0)  # logged once; the edge counts what it answers
            self._down = (reason, self.clock() + self.probe_seconds)
            return self._carried(start, reason)
        self._down = None
        with self._last_lock:
            # Concurrent reads may return out of order: keep the one that started last, so the
            # value carried through an outage never goes back (which would drop every cache).
            if self._last is None or start >= self._last[1]:
                self._last = (value, start)
        return value

    def _carried(self, now: float, reason: str) -> int:
        """The last value read, while it is at most ``grace`` seconds old."""
        last = self._last
        if last is None or now - last[1] > self.grace:
            age = "never read" if last is None else f"last read {now - last[1]:.1f} s ago"
            raise unavailable(f"{reason} (the revocation sequence was {age}; ocsp.outage_grace_seconds is "
                              f"{self.grace:g})")
        return last[0]

    def age(self) -> float | None:
        """Seconds since the last successful read started (None before the first one)."""
        last = self._last
        return None if last is None else self.clock() - last[1]


__all__ = ["PROBE_SECONDS", "SequenceRead"]
