"""Lookup counters by certificate kind, status, relying party and JST day (J-LIS reports counts).

Counting must not slow the hot path: each process counts in memory and a background thread
adds the increments to the shared ``ocsp_lookups`` table every ``ocsp.stats_flush_seconds``,
when the server is told to stop (:func:`flush_all`) and at exit, including the exit of a
granian worker process, which skips ``atexit``.  Reads (``/metrics``, the admin API, the CLI)
come from that table, after flushing the reading process's own counts.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import weakref
from datetime import date, datetime, timedelta
from multiprocessing import util as mp_util
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from jpki_mock.clock import JST
from jpki_mock.db import Store, outage_reason
from jpki_mock.ocsp.models import OcspLookup
from jpki_mock.vocab import KINDS as CERT_KINDS
from jpki_mock.vocab import CertState

log = logging.getLogger("jpki_mock.ocsp.stats")


#: What an answer is counted by, besides the day and the relying party: the certificate kind
#: ("-" when no issuer was matched) and the status (an OCSP certStatus, or the OCSP error).
KINDS = (*(kind.value for kind in CERT_KINDS), "-")
STATUSES = (CertState.GOOD.value, CertState.REVOKED.value, "unknown", "unauthorized", "malformedRequest", "tryLater",
            "internalError")
#: (kind, status) -> its index in a tally (:meth:`Counters.tally`)
SLOTS: dict[tuple[str, str], int] = {ks: i for i, ks in enumerate((k, s) for k in KINDS for s in STATUSES)}
#: SLOTS index -> (kind, status)
LABELS: list[tuple[str, str]] = list(SLOTS)
#: An answer served from the pre-signed cache by the hot path counts at ``SLOTS[...] + HIT``:
#: the one increment it makes records the answer and that it was a cache hit (a second counter
#: there would cost every cached answer another increment).  :meth:`Counters.totals` adds both
#: halves; :meth:`Counters.hits` sums the second.
HIT = len(SLOTS)


class Counters:
    """Per-process counts by (day, kind, status, relying party).

    Each (day, relying party) has a tally: a list with two items per :data:`SLOTS` entry (:data:`HIT`).  The
    hot paths hold on to their party's tally (:meth:`tally`, :attr:`anonymous`) and add to
    ``tally[slot]``, one list item: building and hashing a four-part key per answer cost a
    cached GET about 4 % of its throughput under granian.  :meth:`add` is the same for callers
    without a tally at hand.  Under CPython's GIL ``list[i] += 1`` does not switch threads in
    the middle, so no lock is needed for the increments."""

    def __init__(self, store: Store):
        self.store = store
        #: (day, relying party) -> counts by SLOTS index
        self._tallies: dict[tuple[str, str], list[int]] = {}
        self._flushed: dict[tuple[str, str, str, str], int] = {}
        self._flush_lock = threading.Lock()
        self.day = ""
        self.day_end = 0.0
        #: the tally of answers without a relying party ("-", access control off) for :attr:`day`
        self.anonymous = self.tally("-")
        self._stop: threading.Event | None = None

    def roll(self, now_ts: float) -> str:
        """The JST day label for ``now_ts``, recomputed only when a day boundary passes."""
        if now_ts >= self.day_end or now_ts < self.day_end - 86400:
            local = datetime.fromtimestamp(now_ts, JST)
            start = local.replace(hour=0, minute=0, second=0, microsecond=0)
            self.day = start.date().isoformat()
            self.day_end = (start + timedelta(days=1)).timestamp()
            self.anonymous = self.tally("-")
        return self.day

    def tally(self, party: str) -> list[int]:
        """The counts of ``party`` on :attr:`day` (roll first): add to ``[SLOTS[(kind, status)]]``.
        Holders must take a new one when the day ends (:attr:`day_end`)."""
        key = (self.day, party)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies.setdefault(key, [0] * (2 * HIT))
        return tally

    def add(self, now_ts: float, kind: str, status: str, party: str = "-") -> None:
        if now_ts >= self.day_end:
            self.roll(now_ts)
        self.tally(party)[SLOTS[(kind, status)]] += 1

    def totals(self) -> dict[tuple[str, str, str, str], int]:
        """Every count so far, by (day, kind, status, relying party)."""
        out = {}
        for (day, party), tally in list(self._tallies.items()):  # a C-level copy: atomic under the GIL
            for (kind, status), slot in SLOTS.items():
                count = tally[slot] + tally[slot + HIT]
                if count:
                    out[(day, kind, status, party)] = count
        return out

    def hits(self) -> int:
        """Answers the hot path served from the pre-signed cache so far (the ``HIT`` half)."""
        return sum(sum(tally[HIT:]) for tally in list(self._tallies.values()))

    def flush(self) -> int:
        """Add the increments since the last flush to the shared table; returns how many keys."""
        with self._flush_lock:
            snapshot = self.totals()
            deltas = {k: v - self._flushed.get(k, 0) for k, v in snapshot.items() if v != self._flushed.get(k, 0)}
            if not deltas:
                return 0
            try:
                _add_counts(self.store, deltas)
            except SQLAlchemyError as exc:  # the store is down or locked: keep counting, retry later
                reason = outage_reason(exc)
                if reason is None:
                    log.warning("could not flush OCSP counters: %s", exc)
                else:  # an outage is logged once, by the store's outage record
                    self.store.outage.report(reason, failed=0)
                return 0
            self._flushed.update(snapshot)
            return len(deltas)

    def start(self, interval: float) -> None:
        """Flush every ``interval`` seconds from a daemon thread, and once more at exit."""
        if self._stop is not None:
            return
        self._stop = threading.Event()
        stop = self._stop

        def loop() -> None:
            while not stop.wait(interval):
                self.flush()

        threading.Thread(target=loop, name="ocsp-stats-flush", daemon=True).start()
        _started.add(self)
        atexit.register(self.stop)
        # granian's workers are multiprocessing children, which leave through os._exit without
        # running atexit; multiprocessing runs its own finalizers first.
        mp_util.Finalize(None, self.stop, exitpriority=10)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        # at interpreter exit the store may already be gone
        with contextlib.suppress(Exception):
            self.flush()


#: the counters flushing in this process (:func:`flush_all`)
_started: weakref.WeakSet[Counters] = weakref.WeakSet()


def flush_all() -> None:
    """Flush every started counter of this process now (a stop signal arrived)."""
    for counters in list(_started):
        with contextlib.suppress(Exception):  # the store may be down: the exit flush retries
            counters.flush()


def _add_counts(store: Store, deltas: dict[tuple[str, str, str, str], int]) -> None:
    rows = [{"day": date.fromisoformat(d), "kind": k, "status": s, "relying_party": p, "count": n}
            for (d, k, s, p), n in deltas.items()]
    # Both dialects spell the upsert alike (INSERT ... ON CONFLICT DO UPDATE), with their own types.
    stmt: sqlite.Insert | postgresql.Insert = (
        sqlite.insert(OcspLookup) if store.is_sqlite else postgresql.insert(OcspLookup)).values(rows)
    upsert = stmt.on_conflict_do_update(
        index_elements=["day", "kind", "status", "relying_party"],
        set_={"count": OcspLookup.count + stmt.excluded.count},
    )
    with store.engine.begin() as conn:
        conn.execute(upsert)


def rows(store: Store, since: date | None = None, until: date | None = None) -> list[dict[str, Any]]:
    query = select(OcspLookup).order_by(OcspLookup.day, OcspLookup.kind, OcspLookup.status, OcspLookup.relying_party)
    if since is not None:
        query = query.where(OcspLookup.day >= since)
    if until is not None:
        query = query.where(OcspLookup.day <= until)
    with store.session() as s:
        return [{"day": r.day.isoformat(), "kind": r.kind, "status": r.status, "relying_party": r.relying_party,
                 "count": int(r.count)} for r in s.scalars(query)]


def summary(store: Store, since: date | None = None, until: date | None = None) -> dict[str, Any]:
    """JSON summary: every row, and totals by kind and status, by day, by relying party."""
    data = rows(store, since, until)
    by_kind: dict[str, dict[str, int]] = {}
    by_day: dict[str, int] = {}
    by_party: dict[str, int] = {}
    for r in data:
        by_kind.setdefault(r["kind"], {}).setdefault(r["status"], 0)
        by_kind[r["kind"]][r["status"]] += r["count"]
        by_day[r["day"]] = by_day.get(r["day"], 0) + r["count"]
        by_party[r["relying_party"]] = by_party.get(r["relying_party"], 0) + r["count"]
    return {"total": sum(by_day.values()), "by_kind": by_kind, "by_day": by_day, "by_relying_party": by_party,
            "rows": data}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(store: Store, extra: dict[str, int] | None = None, counters: dict[str, int] | None = None) -> str:
    """Prometheus text exposition format 0.0.4: the shared lookup counts, then this process's
    gauges (``extra``) and counters (``counters``, named without ``_total``)."""
    lines = [
        "# HELP jpki_ocsp_lookups_total OCSP answers by certificate kind, status, relying party and JST day.",
        "# TYPE jpki_ocsp_lookups_total counter",
    ]
    for r in rows(store):
        lines.append(
            f'jpki_ocsp_lookups_total{{kind="{_label(r["kind"])}",status="{_label(r["status"])}",'
            f'relying_party="{_label(r["relying_party"])}",day="{r["day"]}"}} {r["count"]}'
        )
    for name, value in (extra or {}).items():
        lines.append(f"# TYPE jpki_ocsp_{name} gauge")
        lines.append(f"jpki_ocsp_{name} {value}")
    for name, value in (counters or {}).items():
        lines.append(f"# TYPE jpki_ocsp_{name}_total counter")
        lines.append(f"jpki_ocsp_{name}_total {value}")
    return "\n".join(lines) + "\n"
