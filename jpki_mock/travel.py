"""The travelling clock: a development-only override of "now" (docs/time-travel.md).

Two ways to move the clock, both off unless ``time_travel = true`` (and impossible with
``shared = true``: :func:`ca.config.validate` refuses that combination at start-up):

- an operator offset, shared by every process on the data directory: ``jpki-mock clock
  set/advance/reset`` or ``/admin/api/clock``.  It is a small file in the data directory,
  written atomically (write + rename), and re-read only when its inode or mtime changes, so
  :meth:`TravellingClock.now` costs one ``stat`` in the steady state;
- a per-request header ``X-JPKI-Mock-Time`` on the CRL and OCSP endpoints (as Certomancer's
  fake-time header), an absolute time or an offset; :func:`wsgi` applies it to one request.

The runtime wraps its clock in :class:`TravellingClock` when time travel is enabled
(:meth:`ca.runtime.Runtime.open`); every component that asks ``runtime.clock`` for "now"
(issuance, CRL thisUpdate/nextUpdate, OCSP thisUpdate/producedAt) moves with it.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from jpki_mock import audit
from jpki_mock.clock import UTC, Clock, FixedClock
from jpki_mock.errors import Forbidden, InvalidInput

HEADER = "X-JPKI-Mock-Time"
_ENVIRON_KEY = "HTTP_X_JPKI_MOCK_TIME"
FILE_NAME = "time-travel.json"
#: the furthest the clock may move either way: beyond the CA's 10-year life nothing is useful.
MAX_OFFSET = timedelta(days=366 * 20)

_request_time: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("jpki_request_time", default=None)
# ASCII digits only ("\d" would take any Unicode digit), at most 9 per amount so no timedelta overflows
_DELTA = re.compile(r"([+-]?)((?:[0-9]{1,9}[dhms])+)")
_UNIT = re.compile(r"([0-9]{1,9})([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
DISABLED = (
    "time travel is disabled on this server",
    "set time_travel = true (JPKI_MOCK_TIME_TRAVEL=1) on a private development server, never with shared = true",
)


def offset_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / FILE_NAME


def parse_delta(value: Any, field: str = "by") -> timedelta:
    """``3d``, ``+1h30m``, ``-90s``: days, hours, minutes, seconds."""
    text = value.strip() if isinstance(value, str) else ""
    match = _DELTA.fullmatch(text)
    if not match:
        raise InvalidInput(f"{value!r} is not a duration", field=field, allowed="e.g. 3d, +1h30m, -90s (units d h m s)")
    delta = timedelta(**{_UNITS[u]: 0 for u in _UNITS})
    try:
        for amount, unit in _UNIT.findall(match.group(2)):
            delta += timedelta(**{_UNITS[unit]: int(amount)})
    except OverflowError:
        raise InvalidInput(f"{value!r} is too long a duration", field=field,
                           allowed=f"at most {MAX_OFFSET.days} days either way") from None
    return -delta if match.group(1) == "-" else delta


def parse_time(value: Any, field: str = "at") -> datetime:
    """An ISO 8601 time with a zone (``2027-01-01T00:00:00Z``, ``...+09:00``), whole seconds."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")) if text.isascii() else None
        utc = at.astimezone(UTC) if at is not None and at.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved out of range by the zone
        utc = None
    if utc is None:
        raise InvalidInput(f"{value!r} is not an ISO 8601 time with a time zone", field=field,
                           allowed="e.g. 2027-01-01T00:00:00Z or 2027-01-01T09:00:00+09:00")
    return utc.replace(microsecond=0)


def _check_offset(offset: timedelta, field: str) -> timedelta:
    if abs(offset) > MAX_OFFSET:
        raise InvalidInput(f"moves the clock {abs(offset).days} days", field=field,
                           allowed=f"at most {MAX_OFFSET.days} days either way")
    return offset


class TravellingClock:
    """``base`` shifted by the shared offset file, or pinned by a per-request header."""

    def __init__(self, base: Clock, path: Path):
        self.base = base
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._offset = timedelta(0)

    def offset(self) -> timedelta:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return timedelta(0)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._seen:
            with self._lock:
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                    self._offset = timedelta(seconds=int(data["offset_seconds"]))
                except FileNotFoundError:
                    return timedelta(0)
                except (ValueError, KeyError, TypeError):
                    self._offset = timedelta(0)  # a damaged file means no travel, never a crash
                self._seen = key
        return self._offset

    def now(self) -> datetime:
        pinned = _request_time.get()
        if pinned is not None:
            return pinned
        return self.base.now() + self.offset()

    # ---------------------------------------------------------------- operator changes
    def _write(self, offset: timedelta) -> None:
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        data = {"offset_seconds": int(offset.total_seconds()), "written_at": self.base.now().isoformat()}
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    @audit.operation("clock.set", lambda a: _iso(a["at"]))
    def set(self, at: datetime) -> datetime:
        self._write(_check_offset(at - self.base.now(), "at"))
        return self.now()

    @audit.operation("clock.advance", lambda a: f"{a['delta'].total_seconds():+.0f}s")
    def advance(self, delta: timedelta) -> datetime:
        self._write(_check_offset(self.offset() + delta, "by"))
        return self.now()

    @audit.operation("clock.reset")
    def reset(self) -> datetime:
        self.path.unlink(missing_ok=True)
        return self.now()

    def describe(self) -> dict[str, Any]:
        offset = self.offset()
        return {"enabled": True, "real_now": _iso(self.base.now()), "now": _iso(self.base.now() + offset),
                "offset_seconds": int(offset.total_seconds())}


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def travelling(clock: Clock) -> TravellingClock:
    """The runtime's clock as a :class:`TravellingClock`, or Forbidden when time travel is off."""
    if not isinstance(clock, TravellingClock):
        raise Forbidden(DISABLED[0], field="time_travel", allowed=DISABLED[1])
    return clock


def request_time(environ: WSGIEnvironment, runtime: Any) -> datetime | None:
    """The time a CRL/OCSP request asks for with ``X-JPKI-Mock-Time`` (absolute ISO 8601, or an
    offset from the runtime's current time such as ``+2d``); None without the header or when time
    travel is off (the header is then ignored, as on the real service)."""
    raw = environ.get(_ENVIRON_KEY)
    if raw is None or not isinstance(runtime.clock, TravellingClock):
        return None
    raw = raw.strip()
    if raw[:1] in "+-" or (raw[:1].isdigit() and _DELTA.fullmatch(raw)):
        at = runtime.clock.base.now() + _check_offset(parse_delta(raw, HEADER), HEADER)
    else:
        at = parse_time(raw, HEADER)
        _check_offset(at - runtime.clock.base.now(), HEADER)
    return at


def clock_for(environ: WSGIEnvironment, runtime: Any) -> Clock:
    """The clock one request should use: pinned by the header, else the runtime's clock."""
    at = request_time(environ, runtime)
    return runtime.clock if at is None else FixedClock(at)


def wsgi(app: WSGIApplication, runtime: Any) -> WSGIApplication:
    """Wrap a WSGI app so ``runtime.clock.now()`` answers the header's time for that request.

    Returns ``app`` itself when time travel is off: the hot path pays nothing.  A bad header is
    a 400 with a plain-text reason (nothing else is touched)."""
    if not isinstance(runtime.clock, TravellingClock):
        return app

    def travelled(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            at = request_time(environ, runtime)
        except InvalidInput as err:
            reason = f"{err}; allowed: {err.allowed}\n".encode()
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(reason)))])
            return [reason]
        if at is None:
            return app(environ, start_response)
        token = _request_time.set(at)
        try:
            # Materialise the body inside the pinned context: a lazy iterable would run after reset.
            body = app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                if hasattr(body, "close"):
                    body.close()  # PEP 3333: the server would have closed it
        finally:
            _request_time.reset(token)

    return travelled


def pinned() -> datetime | None:
    """The header's time while a time-travelled request runs (caches should not store its answers)."""
    return _request_time.get()
