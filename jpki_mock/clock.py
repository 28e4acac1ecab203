"""The injected clock.

Everything that needs "now" takes a :class:`Clock`, so tests freeze time and the
development-only time-travel override (docs/time-travel.md) can move it.
All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import threading
from datetime import UTC as UTC  # re-exported: the kernel's one name for UTC
from datetime import datetime, timedelta, timezone
from typing import Protocol

#: Japan Standard Time: JPKI's day boundaries (notAfter 14:59:59Z = 23:59:59 JST).
JST = timezone(timedelta(hours=9), "JST")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, truncated to whole seconds (X.509 times have no fractions)."""

    def now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)


class FixedClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime (use tzinfo=UTC)")
        self._at = at.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = at.astimezone(UTC)

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._at = self._at + timedelta(**delta)
            return self._at


class OffsetClock:
    """Another clock shifted by an offset; the basis of the time-travel override."""

    def __init__(self, base: Clock, offset: timedelta = timedelta(0)):
        self.base = base
        self.offset = offset

    def now(self) -> datetime:
        return self.base.now() + self.offset


def to_utc(value: datetime) -> datetime:
    """Aware UTC datetime from a possibly naive one (naive values come back from SQLite)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
