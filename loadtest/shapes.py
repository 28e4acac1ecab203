"""The Locust load shape: one class for the four profiles, driven by the plan (runs on the master).

Every second it asks the :class:`~loadtest.profiles.Plan` how many users to run, and writes
the target to ``target.csv`` for the plot.  For ``stress`` it also judges each step from
Locust's own counters of the OCSP requests, stops at the first step the target cannot
sustain and writes ``knee.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from locust import LoadTestShape

from jpki_mock.loadtest.profiles import OCSP_NAME_PREFIX, KneeFinder, Window, window_result
from jpki_mock.loadtest.users import context

#: a step's window starts this long after the step began, so that it holds only that step's
#: requests: workers report their counters to the master every second (users.py sets
#: locust's WORKER_REPORT_INTERVAL), and users take a moment to settle on a new pace.
WORKER_LAG = 2.0
LOCAL_LAG = 1.0


class JpkiShape(LoadTestShape):
    def __init__(self):
        super().__init__()
        self._last_row = -1
        self._windows: dict[int, list[Window]] = {}  # stress step -> counters each second after it settled
        self._judged: set[int] = set()
        self._knee: KneeFinder | None = None
        self._target_file = None

    # ----------------------------------------------------------------- outputs
    def _out(self) -> Path:
        return Path(context().spec.out)

    def _log_target(self, t: float, users: int) -> None:
        second = int(t)
        if second == self._last_row:
            return
        self._last_row = second
        if self._target_file is None:
            self._out().mkdir(parents=True, exist_ok=True)
            # Appended to every tick for the whole run; closed when the run stops.
            self._target_file = open(self._out() / "target.csv", "w", encoding="utf-8")  # noqa: SIM115
            self._target_file.write("t,target_ocsp_rps,users\n")
        plan = context().plan
        self._target_file.write(f"{second},{plan.ocsp_rate(t):.4f},{users}\n")
        self._target_file.flush()

    def _write_knee(self) -> None:
        if self._knee is not None:
            (self._out() / "knee.json").write_text(json.dumps(self._knee.as_dict(), indent=2), encoding="utf-8")

    # ----------------------------------------------------------------- stress
    def _snapshot(self, t: float) -> Window:
        requests = failures = 0
        times: dict[int, int] = {}
        assert self.runner is not None  # Locust sets it before the first tick()
        for (name, _method), entry in self.runner.stats.entries.items():
            if not name.startswith(OCSP_NAME_PREFIX):
                continue
            requests += entry.num_requests
            failures += entry.num_failures
            for ms, n in entry.response_times.items():
                times[ms] = times.get(ms, 0) + n
        return Window(t, requests, failures, times)

    def _stress_continue(self, t: float) -> bool:
        spec, plan = context().spec, context().plan
        if self._knee is None:
            self._knee = KneeFinder(spec.p99_ms, spec.max_failure_ratio, spec.min_achieved)
        lag = WORKER_LAG if spec.workers else LOCAL_LAG
        step = plan.step(t)
        snapshot = self._snapshot(t)
        if t >= step * spec.step_seconds + lag:
            self._windows.setdefault(step, []).append(snapshot)
        previous = step - 1
        if previous in self._windows and previous not in self._judged:
            self._judged.add(previous)
            windows = [*self._windows.pop(previous), snapshot]
            result = window_result(previous, plan.ocsp_rate(previous * spec.step_seconds), windows)
            going = self._knee.judge(result)
            self._write_knee()
            return going
        return True

    # ----------------------------------------------------------------- Locust
    def tick(self):
        ctx = context()
        t = self.get_run_time()
        if t >= ctx.spec.duration:
            self._finish()
            return None
        if ctx.spec.profile == "stress" and not self._stress_continue(t):
            self._finish()
            return None
        users = ctx.plan.total_users(t)
        self._log_target(t, users)
        return users, max(20.0, float(users))

    def _finish(self) -> None:
        self._write_knee()
        if self._target_file is not None:
            self._target_file.close()
            self._target_file = None
