"""Every request of a load run, one line each: the one source of the summary's percentiles, the
plot and the progress lines, so that the three cannot disagree.

Each load-generating process (Locust's single process, or each worker) appends to its own
``samples-<pid>.csv`` in the run's output directory: the plan's run time (the clock the target
rates are defined on), the method, Locust's request name, the response time in milliseconds
and whether the request passed its checks.  Locust's own CSV percentiles are not used for
this: its history rows are a rolling window of the last seconds and its totals are bucketed,
so neither can be drawn next to the other and agree.

Writes are buffered and flushed at most once a second (one system call per second per
process, not per request), so a reader sees every request within about a second.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jpki_mock.loadtest.profiles import OCSP_NAME_PREFIX

PATTERN = "samples-*.csv"
HEADER = "t,method,name,ms,ok\n"
FLUSH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)  # slots: a long run holds millions of them
class Sample:
    t: float
    method: str
    name: str
    ms: float
    ok: bool

    @property
    def ocsp(self) -> bool:
        return self.name.startswith(OCSP_NAME_PREFIX)


class Writer:
    """This process's samples file, opened on the first request."""

    def __init__(self, out: Path | str):
        self.path = Path(out) / f"samples-{os.getpid()}.csv"
        self._fh: IO[str] | None = None
        self._flushed = 0.0

    def add(self, t: float, method: str, name: str, ms: float, ok: bool) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Open for the process's lifetime: appended to on every request, closed at quit.
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
            self._fh.write(HEADER)
        # Request names are ours (users.py): no commas or newlines to quote.
        self._fh.write(f"{t:.3f},{method},{name},{ms:.3f},{1 if ok else 0}\n")
        now = time.monotonic()
        if now - self._flushed >= FLUSH_SECONDS:
            self._fh.flush()
            self._flushed = now

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _parse(line: str) -> Sample | None:
    parts = line.rstrip("\n").split(",")
    if len(parts) != 5 or parts[0] == "t":
        return None
    try:
        return Sample(float(parts[0]), parts[1], parts[2], float(parts[3]), parts[4] == "1")
    except ValueError:
        return None


class Tail:
    """Reads the samples files of ``out`` as they grow: each call returns the complete lines
    written since the previous one (a line being written is left for the next call)."""

    def __init__(self, out: Path | str):
        self.out = Path(out)
        self._offsets: dict[Path, int] = {}

    def new(self) -> list[Sample]:
        found: list[Sample] = []
        for path in sorted(self.out.glob(PATTERN)):
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1
            self._offsets[path] = offset + end
            for line in chunk[:end].decode("utf-8", errors="replace").splitlines():
                sample = _parse(line)
                if sample is not None:
                    found.append(sample)
        return found


def read(out: Path | str) -> list[Sample]:
    """Every sample of a finished run, in run-time order."""
    return sorted(Tail(out).new(), key=lambda s: s.t)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (sorted ascending): the smallest value with at
    least ``fraction`` of the values at or below it (numpy's ``inverted_cdf`` method), rounded to
    0.01 ms, the precision every report of it shows."""
    if not values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(values) - 1e-9))
    return round(values[rank - 1], 2)


#: the percentiles every report shows, by name
PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def figures(samples: list[Sample]) -> dict[str, float | int]:
    """Requests, failures and the percentiles (ms) of ``samples``."""
    times = sorted(s.ms for s in samples)
    out: dict[str, float | int] = {"requests": len(samples), "failures": sum(1 for s in samples if not s.ok)}
    for key, fraction in PERCENTILES.items():
        out[f"{key}_ms"] = percentile(times, fraction)
    return out
