"""Plans: target rates and users over time, validation, the stress knee (loadtest/profiles.py)."""

import pytest

from jpki_mock.errors import InvalidInput
from jpki_mock.loadtest import sizing
from jpki_mock.loadtest.profiles import KneeFinder, Plan, PlanSpec, StepResult, Window, percentile, slope, window_result


def spec(**kw):
    base = {"profile": "fy2020", "duration": 60, "corpus": "c.json", "out": "out"}
    base.update(kw)
    return PlanSpec(**base)


def test_fy2020_replays_the_real_average_over_a_compressed_week():
    plan = Plan(spec(day_seconds=24))  # one simulated hour per real second
    rates = [plan.rate("auth", t + 0.5) + plan.rate("sign", t + 0.5) for t in range(168)]
    assert sum(rates) / 168 == pytest.approx(sizing.OCSP_RPS, rel=0.01)
    assert max(rates) == pytest.approx(sizing.OCSP_PEAK_HOUR_RPS, rel=0.05)
    assert plan.rate("auth", 10.5) / plan.rate("sign", 10.5) == pytest.approx(sizing.AUTH_TO_SIGN)
    assert plan.week_hour(48) == pytest.approx(48)


def test_scale_multiplies_every_class():
    one, hundred = Plan(spec(profile="soak")), Plan(spec(profile="soak", scale=100))
    for klass in ("auth", "sign", "crl", "operator"):
        assert hundred.rate(klass, 5) == pytest.approx(100 * one.rate(klass, 5))


def test_peak_is_the_busiest_hour_times_the_multiplier():
    plan = Plan(spec(profile="peak", multiplier=2))
    total = plan.rate("auth", 0) + plan.rate("sign", 0)
    assert total == pytest.approx(sizing.OCSP_PEAK_HOUR_RPS * 2)
    assert plan.rate("crl", 0) == pytest.approx(sizing.CRL_RPS)


def test_stress_steps_up_geometrically_and_users_follow():
    plan = Plan(spec(profile="stress", start_rate=10, step_factor=2, step_seconds=5, users=50))
    assert plan.ocsp_rate(0) == pytest.approx(10)
    assert plan.ocsp_rate(5) == pytest.approx(20)
    assert plan.ocsp_rate(14.9) == pytest.approx(40)
    assert plan.users("auth", 0) == 1
    assert plan.users("auth", 100) == 50  # capped
    # each auth user is paced at most PER_USER_RPS until the cap
    assert plan.rate("auth", 10) / plan.users("auth", 10) <= 10.0 + 1e-9


def test_disabled_classes_get_no_users_or_rate():
    plan = Plan(spec(classes=("auth",)))
    assert plan.users("operator", 0) == 0 and plan.rate("crl", 0) == 0
    assert plan.total_users(0) == plan.users("auth", 0)
    assert plan.mean_interval("crl", 0) is None


def test_operator_sleeps_outside_office_hours():
    plan = Plan(spec(day_seconds=24))
    assert plan.rate("operator", 3.5) == 0  # Monday 03:30 JST
    assert plan.rate("operator", 10.5) > 0


@pytest.mark.parametrize("kw,field", [
    ({"profile": "flood"}, "profile"),
    ({"duration": 0}, "duration"),
    ({"scale": -1}, "scale"),
    ({"step_factor": 1.0}, "step-factor"),
    ({"users": 0}, "users"),
    ({"nonce_share": 1.5}, "nonce-share"),
    ({"classes": ("auth", "robots")}, "classes"),
    ({"classes": ()}, "classes"),
    ({"start_hour": 200}, "start-hour"),
    ({"ocsp_path": "ocsp"}, "ocsp-path"),
])
def test_bad_plans_are_refused_with_the_field(kw, field):
    with pytest.raises(InvalidInput) as err:
        spec(**kw)
    assert err.value.field == field


def test_plan_round_trips_through_json(tmp_path):
    s = spec(profile="stress", token="secret", classes=("auth", "operator"))
    path = s.write(tmp_path / "plan.json")
    assert PlanSpec.load(path) == s
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_percentile_and_windows():
    assert percentile({}, 0.99) is None
    assert percentile({1: 98, 5: 1, 200: 1}, 0.99) == 5
    assert percentile({1: 98, 5: 1, 200: 1}, 1.0) == 200
    a = Window(10.0, 100, 0, {2: 100})
    b = Window(20.0, 1100, 5, {2: 1090, 300: 10})
    r = window_result(3, 100.0, [a, b])
    assert (r.requests, r.failures, r.achieved_rps) == (1000, 5, 100.0)
    assert r.p99_ms == 2.0  # 990 of the window's 1000 requests took 2 ms


def test_achieved_rate_ignores_batched_reports():
    # 100 req/s arriving at the master in batches every 3 s: the first and last snapshot of the
    # window alone would say 300 requests in 4 s (75 req/s); the slope through all says ~100.
    counts = {10: 0, 11: 0, 12: 300, 13: 300, 14: 300, 15: 600, 16: 600, 17: 600, 18: 900}
    windows = [Window(float(t), c, 0, {}) for t, c in counts.items()]
    assert slope([(w.t, w.requests) for w in windows]) == pytest.approx(100, rel=0.15)
    assert window_result(0, 100, windows).achieved_rps == pytest.approx(100, rel=0.15)


def test_knee_is_the_last_sustained_step():
    knee = KneeFinder(p99_ms=100, max_failure_ratio=0.01, min_achieved=0.9)
    assert knee.judge(StepResult(0, 10, 10, 100, 0, 5))
    assert knee.judge(StepResult(1, 20, 19.5, 195, 1, 20))
    assert not knee.judge(StepResult(2, 40, 39, 390, 0, 150))
    assert knee.knee.step == 1
    assert "p99 150 ms > 100 ms" in knee.stopped_by
    shortfall = KneeFinder(100, 0.01, 0.9)
    assert not shortfall.judge(StepResult(0, 100, 50, 500, 0, 5))
    assert shortfall.knee is None and "achieved 50.0" in shortfall.stopped_by
    failing = KneeFinder(100, 0.01, 0.9)
    assert not failing.judge(StepResult(0, 10, 10, 100, 2, 5))
    assert "failures 2.00%" in failing.stopped_by
