"""Load profiles as pure functions of time: target request rates and simulated users.

No Locust import here (Locust monkey-patches the standard library with gevent on import),
so the arithmetic is testable on its own and the same :class:`Plan` runs on the Locust
master (which shapes the user count) and on every worker (which paces its users).

Four kinds of simulated client (``CLASSES``):
``auth`` / ``sign``: relying parties checking user-authentication / signature certificates
over OCSP; ``crl``: registered verifiers polling CRLs; ``operator``: municipal offices
issuing and revoking through the admin API.

How the rate is held: each user of a class waits an exponentially distributed time with
mean ``users / rate`` between requests (Poisson arrivals, as independent card holders
produce), and the shape keeps enough users that each needs at most ``PER_USER_RPS``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpki_mock.errors import InvalidInput
from jpki_mock.loadtest import sizing

PROFILES = ("fy2020", "peak", "stress", "soak")
CLASSES = ("auth", "sign", "crl", "operator")
#: most requests per second one simulated user is asked to make (it must finish each request
#: within 1/PER_USER_RPS seconds to keep up, so a saturated target shows as a rate shortfall).
PER_USER_RPS = {"auth": 10.0, "sign": 10.0, "crl": 1.0, "operator": 2.0}
#: Request names (Locust's "Name" column) that are OCSP lookups by relying parties: the stress
#: knee is judged on these alone, so slow admin calls do not hide the responder's figures.
OCSP_NAME_PREFIX = "ocsp "
OPERATOR_TOTAL_RPS = sum(sizing.OPERATOR_RPS.values())
AUTH_SHARE = sizing.OCSP_AUTH_RPS / sizing.OCSP_RPS


@dataclass(frozen=True)
class PlanSpec:
    """Everything one run needs, written to ``plan.json`` and read by master and workers."""

    profile: str
    #: seconds; the run stops then (stress may stop earlier, at the knee).
    duration: float
    corpus: str
    out: str
    #: multiplies every rate of the profile (e.g. 100 for a future year).
    scale: float = 1.0
    #: most simulated OCSP users (concurrency cap of the load generator).
    users: int = 500
    classes: tuple[str, ...] = CLASSES
    #: fy2020: real seconds per simulated day (time compression), and the week hour at t=0
    #: (0 = Monday 00:00 JST).
    day_seconds: float = 240.0
    start_hour: float = 0.0
    #: peak: the busiest hour of the curve times this.
    multiplier: float = sizing.PEAK_DAY_MULTIPLIER
    #: soak: OCSP requests per second (default: the FY2020 average), before ``scale``.
    rate: float | None = None
    #: stress: first OCSP rate (default: the FY2020 busiest hour), before ``scale``; each step
    #: multiplies it by ``step_factor`` and lasts ``step_seconds``.
    start_rate: float | None = None
    step_factor: float = 1.5
    step_seconds: float = 10.0
    #: stress stops at the first step over either limit, or reaching less than ``min_achieved``
    #: of its target rate (the target, or the load generator, saturated).
    p99_ms: float = 200.0
    max_failure_ratio: float = 0.01
    min_achieved: float = 0.9
    #: Locust worker processes (0: one process); the stress knee allows for their report lag.
    workers: int = 0
    #: request details.
    ocsp_path: str = "/ocsp"
    get_share: float = sizing.OCSP_GET_SHARE
    nonce_share: float = sizing.OCSP_NONCE_SHARE
    sha256_share: float = sizing.OCSP_SHA256_SHARE
    verify_signatures: bool = False
    #: national scale (a corpus with a population sample): the share of lookups that repeat a
    #: recent one (a relying party re-checking a session); the rest are first lookups.
    repeat_share: float = 0.05
    #: admin API bearer token (operator) and relying-party credential (verifiers), if any.
    token: str | None = field(default=None, repr=False)
    rp_credential: str | None = field(default=None, repr=False)
    seed: int | None = None

    def __post_init__(self):
        check_spec(self)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["classes"] = list(self.classes)
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> PlanSpec:
        data = json.loads(text)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InvalidInput(f"unknown plan field(s) {sorted(unknown)}", field="plan")
        data["classes"] = tuple(data.get("classes", CLASSES))
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> PlanSpec:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)  # it may carry the admin token
        path.write_text(self.to_json(), encoding="utf-8")
        return path


def _positive(spec: PlanSpec, name: str) -> None:
    value = getattr(spec, name)
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
                              or math.isinf(value)):
        raise InvalidInput(f"{value!r} must be a number greater than 0", field=name.replace("_", "-"))


def _share(spec: PlanSpec, name: str) -> None:
    value = getattr(spec, name)
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInput(f"{value!r} is not a share", field=name.replace("_", "-"), allowed="0 to 1")


def check_spec(spec: PlanSpec) -> None:
    if spec.profile not in PROFILES:
        raise InvalidInput(f"{spec.profile!r} is not a profile", field="profile", allowed=list(PROFILES))
    for name in ("duration", "scale", "day_seconds", "multiplier", "rate", "start_rate", "step_seconds", "p99_ms"):
        _positive(spec, name)
    if spec.step_factor is None or not spec.step_factor > 1:
        raise InvalidInput(f"{spec.step_factor!r} must be greater than 1", field="step-factor")
    if not isinstance(spec.users, int) or spec.users < 1:
        raise InvalidInput(f"{spec.users!r} must be a whole number of at least 1", field="users")
    if not isinstance(spec.workers, int) or not 0 <= spec.workers <= 64:
        raise InvalidInput(f"{spec.workers!r} is out of range", field="workers", allowed="0-64")
    for name in ("get_share", "nonce_share", "sha256_share", "max_failure_ratio", "min_achieved", "repeat_share"):
        _share(spec, name)
    bad = [c for c in spec.classes if c not in CLASSES]
    if bad or not spec.classes:
        raise InvalidInput(f"{list(spec.classes)!r} is not a set of user classes", field="classes",
                           allowed=list(CLASSES))
    if not 0 <= spec.start_hour < 168:
        raise InvalidInput(f"{spec.start_hour!r} is not a week hour", field="start-hour",
                           allowed="0-167 (0 = Monday 00:00 JST)")
    if not spec.ocsp_path.startswith("/"):
        raise InvalidInput(f"{spec.ocsp_path!r} must start with /", field="ocsp-path")


class Plan:
    """Target rates and user counts over time for one :class:`PlanSpec`."""

    def __init__(self, spec: PlanSpec):
        self.spec = spec
        s = spec
        self.ocsp_base = {
            "fy2020": sizing.OCSP_RPS,
            "peak": sizing.OCSP_PEAK_HOUR_RPS * s.multiplier,
            "soak": s.rate if s.rate is not None else sizing.OCSP_RPS,
            "stress": s.start_rate if s.start_rate is not None else sizing.OCSP_PEAK_HOUR_RPS,
        }[s.profile] * s.scale
        self.fixed = {c: self._fixed_users(c) for c in CLASSES if c != "auth" and c in s.classes}

    # -------------------------------------------------------------- time
    def week_hour(self, t: float) -> float:
        """fy2020: the simulated week hour at run time ``t`` (time compression)."""
        return (self.spec.start_hour + t * 24.0 / self.spec.day_seconds) % 168

    def step(self, t: float) -> int:
        return int(t // self.spec.step_seconds)

    # -------------------------------------------------------------- rates
    def ocsp_rate(self, t: float) -> float:
        s = self.spec
        if s.profile == "fy2020":
            return self.ocsp_base * sizing.OCSP_CURVE.at(self.week_hour(t))
        if s.profile == "stress":
            return self.ocsp_base * s.step_factor ** self.step(t)
        return self.ocsp_base

    def rate(self, klass: str, t: float) -> float:
        """Requests (operator: actions) per second wanted from all users of ``klass`` at ``t``."""
        s = self.spec
        if klass not in s.classes:
            return 0.0
        if klass == "auth":
            return self.ocsp_rate(t) * AUTH_SHARE
        if klass == "sign":
            return self.ocsp_rate(t) * (1 - AUTH_SHARE)
        if klass == "crl":
            # Registered verifiers poll on a timetable whatever the traffic: no curve, no multiplier.
            return sizing.CRL_RPS * s.scale
        # operator: municipal office hours.
        if s.profile == "fy2020":
            return OPERATOR_TOTAL_RPS * sizing.OFFICE_CURVE.at(self.week_hour(t)) * s.scale
        if s.profile == "peak":
            busiest = sizing.OFFICE_CURVE.at(sizing.OCSP_CURVE.peak_hour + 0.5)
            return OPERATOR_TOTAL_RPS * busiest * s.multiplier * s.scale
        return OPERATOR_TOTAL_RPS * s.scale

    def max_rate(self, klass: str) -> float:
        ts = [i * min(1.0, self.spec.duration / 200) for i in range(201)]
        return max(self.rate(klass, t) for t in ts)

    # -------------------------------------------------------------- users
    def _fixed_users(self, klass: str) -> int:
        cap = max(1, self.spec.users // 10)
        return max(1, min(cap, math.ceil(self.max_rate(klass) / PER_USER_RPS[klass])))

    def users(self, klass: str, t: float) -> int:
        if klass not in self.spec.classes:
            return 0
        if klass != "auth":
            return self.fixed[klass]
        return max(1, min(self.spec.users, math.ceil(self.rate("auth", t) / PER_USER_RPS["auth"])))

    def total_users(self, t: float) -> int:
        return sum(self.users(c, t) for c in CLASSES)

    def mean_interval(self, klass: str, t: float) -> float | None:
        """Mean seconds between two requests of one user of ``klass`` (None: nothing to do now)."""
        rate = self.rate(klass, t)
        if rate <= 0:
            return None
        return self.users(klass, t) / rate


@dataclass
class Window:
    """Counters of the OCSP requests at one instant (a snapshot of Locust's stats)."""

    t: float
    requests: int
    failures: int
    response_times: dict[int, int]


@dataclass
class StepResult:
    step: int
    target_rps: float
    achieved_rps: float
    requests: int
    failures: int
    p99_ms: float | None

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "target_rps": round(self.target_rps, 2), "achieved_rps": round(self.achieved_rps, 2),
                "requests": self.requests, "failures": self.failures, "failure_ratio": round(self.failure_ratio, 5),
                "p99_ms": self.p99_ms}


def percentile(response_times: dict[int, int], fraction: float) -> float | None:
    """The response time (ms) below which ``fraction`` of the counted requests fall."""
    total = sum(response_times.values())
    if not total:
        return None
    need = math.ceil(total * fraction)
    seen = 0
    for ms in sorted(response_times):
        seen += response_times[ms]
        if seen >= need:
            return float(ms)
    return float(max(response_times))


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares requests per second through (time, cumulative requests) points.

    Counters reach the Locust master in batches (each worker reports every second or so), so
    the count between two snapshots is off by up to one batch; the slope through all of a
    step's snapshots is not."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mr = sum(r for _, r in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (r - mr) for t, r in points) / var if var else 0.0


def window_result(step: int, target: float, windows: list[Window]) -> StepResult:
    """A step's figures from the snapshots taken during it (first and last bound the counts)."""
    a, b = windows[0], windows[-1]
    diff = {k: v - a.response_times.get(k, 0) for k, v in b.response_times.items()
            if v - a.response_times.get(k, 0) > 0}
    requests = b.requests - a.requests
    rate = slope([(w.t, w.requests) for w in windows]) if len(windows) > 2 else requests / max(b.t - a.t, 1e-9)
    return StepResult(step, target, rate, requests, b.failures - a.failures, percentile(diff, 0.99))


@dataclass
class KneeFinder:
    """Stress: judge each step; the knee is the last step the target sustained.

    A step is sustained when its failure ratio is at most ``max_failure_ratio``, its p99 at most
    ``p99_ms``, and the achieved rate at least ``min_achieved`` of the target."""

    p99_ms: float
    max_failure_ratio: float
    min_achieved: float
    steps: list[StepResult] = field(default_factory=list)
    knee: StepResult | None = None
    stopped_by: str | None = None

    def judge(self, result: StepResult) -> bool:
        """Record a step; False once the target stopped keeping up (the run should stop)."""
        self.steps.append(result)
        reasons = []
        if result.requests == 0:
            reasons.append("no requests completed")
        if result.failure_ratio > self.max_failure_ratio:
            reasons.append(f"failures {result.failure_ratio:.2%} > {self.max_failure_ratio:.2%}")
        if result.p99_ms is not None and result.p99_ms > self.p99_ms:
            reasons.append(f"p99 {result.p99_ms:g} ms > {self.p99_ms:g} ms")
        if result.achieved_rps < self.min_achieved * result.target_rps:
            reasons.append(f"achieved {result.achieved_rps:.1f} < {self.min_achieved:.0%} "
                           f"of {result.target_rps:.1f} req/s")
        if reasons:
            self.stopped_by = f"step {result.step}: " + "; ".join(reasons)
            return False
        self.knee = result
        return True

    def as_dict(self) -> dict[str, Any]:
        return {"knee": self.knee.as_dict() if self.knee else None, "stopped_by": self.stopped_by,
                "limits": {"p99_ms": self.p99_ms, "max_failure_ratio": self.max_failure_ratio,
                           "min_achieved": self.min_achieved},
                "steps": [s.as_dict() for s in self.steps]}
