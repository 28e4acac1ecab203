"""The load run's report tells the truth: the plot's numbers (plot.json, and the lines of the
matplotlib figure built from them) equal summary.txt's, OCSP is drawn against the OCSP target,
every percentile is a line of its own, and fy2020's x axis is the simulated hour.

Built from a samples file written here (the format users.py writes during a run), so the
figures are known; tests/loadtest/test_runs.py checks the same on a real run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from jpki_mock.loadtest import report, samples
from jpki_mock.loadtest.profiles import Plan, PlanSpec
from jpki_mock.loadtest.runner import Progress


def write_run(out: Path, profile: str = "soak", **spec_extra) -> list[tuple[float, str, float, bool]]:
    """A 20 s run: OCSP lookups of 1-4 ms with p95 = p99 (a 9 ms tail, one lookup in 10), slow admin calls."""
    out.mkdir(parents=True, exist_ok=True)
    PlanSpec(profile=profile, duration=20, corpus="-", out=str(out), **spec_extra).write(out / "plan.json")
    rows = []
    for i in range(1000):
        t = i * 0.02
        rows.append((t, "ocsp auth POST", 9.0 if i % 10 == 0 else 1.0 + (i % 4), i % 100 != 7))
        if i % 10 == 0:
            rows.append((t, "admin issue", 80.0 + i % 30, True))
    w = samples.Writer(out)
    for t, name, ms, ok in rows:
        w.add(t, "POST", name, ms, ok)
    w.close()
    return rows


def summary_txt_ocsp(out: Path) -> dict[str, float]:
    text = (out / "summary.txt").read_text()
    m = re.search(r"^OCSP: (\d+) requests, (\d+) failures, [\d.]+ req/s, p50 ([\d.]+) ms, p95 ([\d.]+) ms, "
                  r"p99 ([\d.]+) ms$", text, re.M)
    assert m, text
    return {"requests": int(m[1]), "failures": int(m[2]), "p50": float(m[3]), "p95": float(m[4]), "p99": float(m[5])}


def reported(out: Path, profile: str = "soak"):
    summary = report.read_stats(out, profile)
    report.write_summary(summary, out)
    report.plot(out, "test", summary)
    import json

    return summary, json.loads((out / "plot.json").read_text())


def test_plot_and_summary_percentiles_are_the_same_numbers(tmp_path):
    rows = write_run(tmp_path)
    summary, data = reported(tmp_path)
    ocsp_ms = np.array([ms for _t, name, ms, _ok in rows if name.startswith("ocsp")])
    txt = summary_txt_ocsp(tmp_path)
    for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        independent = round(float(np.percentile(ocsp_ms, q, method="inverted_cdf")), 2)
        assert txt[key] == independent == data["whole_run"][key] == summary.ocsp[f"{key}_ms"], key
    assert txt["requests"] == 1000 and txt["failures"] == 10
    # the last summary line (all requests) comes from the same samples
    all_ms = np.array([ms for _t, _n, ms, _ok in rows])
    assert summary.p99_ms == round(float(np.percentile(all_ms, 99, method="inverted_cdf")), 2)
    assert summary.requests == len(rows)


def test_the_figure_draws_plot_json_and_every_percentile_apart(tmp_path):
    import matplotlib.pyplot as plt

    write_run(tmp_path)
    _summary, data = reported(tmp_path)
    fig = report.figure(data, "test")
    try:
        rates, latency = fig.axes
        lines = {line.get_label(): line for line in rates.get_lines()}
        # like with like: OCSP lookups against the OCSP target, nothing else on the rate axes
        assert set(lines) == {"OCSP requests/s (achieved)", "OCSP requests/s (plan target)", "OCSP failures/s"}
        assert list(lines["OCSP requests/s (achieved)"].get_ydata()) == data["ocsp_rps"]
        assert sum(r * w for r, w in zip(data["ocsp_rps"], data["width"], strict=True)) == pytest.approx(1000, abs=0.1)
        lat = {line.get_label(): line for line in latency.get_lines()}
        styles = set()
        for key in ("p50", "p95", "p99"):
            per = lat[f"{key} per {data['bucket_seconds']:g} s"]
            assert [float(v) for v in per.get_ydata()] == data["percentiles"][key]
            whole = lat[f"{key} whole run: {data['whole_run'][key]:g} ms"]
            assert set(whole.get_ydata()) == {data["whole_run"][key]}
            styles.add((per.get_color(), per.get_linestyle(), per.get_linewidth()))
        # p95 equals p99 in every bucket here: still two lines, told apart by colour and dashes
        assert data["percentiles"]["p95"] == data["percentiles"]["p99"]
        assert len(styles) == 3
    finally:
        plt.close(fig)


def test_fy2020_x_axis_is_the_simulated_hour(tmp_path):
    write_run(tmp_path, "fy2020", day_seconds=24.0, start_hour=30.0)  # one simulated hour per second, Tue 06:00
    _summary, data = reported(tmp_path, "fy2020")
    assert data["x_axis"].startswith("simulated time, JST")
    plan = Plan(PlanSpec.load(tmp_path / "plan.json"))
    for t, x, target in zip(data["t"], data["x"], data["target_ocsp_rps"], strict=True):
        assert x == pytest.approx(30.0 + t)
        assert target == round(plan.ocsp_rate(t), 2)
    assert report.sim_label(data["x"][0]) == "Tue 06:30"
    fig = report.figure(data, "test")
    try:
        labels = [report.sim_label(v) for v in fig.axes[1].get_xticks()]
        assert all(re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d:\d\d", lab) for lab in labels)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_progress_line_reads_the_samples_as_they_grow(tmp_path):
    out = tmp_path
    spec = PlanSpec(profile="fy2020", duration=60, corpus="-", out=str(out), day_seconds=24.0, start_hour=6.0)
    progress = Progress(out, spec)
    w = samples.Writer(out)
    w.add(0.5, "POST", "ocsp auth POST", 2.0, True)
    w.add(1.5, "GET", "crl full", 3.0, False)
    w.add(2.0, "POST", "ocsp sign POST", 2.0, True)
    w._fh.flush()  # type: ignore[union-attr]  # the writer flushes once a second; force it here
    line = progress.line(3.0)
    assert re.match(r"progress +3 s: OCSP +[\d.]+ req/s \(target [\d.]+\), all +[\d.]+ req/s, failures 1 of 3, "
                    r"simulated Mon 08:00 JST$", line), line
    w.close()
