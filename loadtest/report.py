"""After a run: the request samples and Locust's CSV files -> a summary (JSON + text) and a PNG
of rate and latency.

Counts and percentiles come from the run's samples (loadtest/samples.py), every request once,
for the summary, the plot and its data file ``plot.json`` alike: what the plot draws as the
whole run's p99 is the number summary.txt prints.  Locust's CSV gives the request rates and the
failure messages.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from jpki_mock.loadtest import samples as samples_mod
from jpki_mock.loadtest.profiles import Plan, PlanSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class NameStats(TypedDict):
    """One request name's row of ``locust_stats.csv``."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass
class Summary:
    profile: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    failures: int = 0
    requests: int = 0
    by_name: list[NameStats] = field(default_factory=list)
    top_failures: list[dict[str, Any]] = field(default_factory=list)
    knee: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: the OCSP lookups alone (what the plan's target rate counts), from the samples
    ocsp: dict[str, Any] | None = None
    #: where the counts and percentiles come from: "samples" (every request) or "locust"
    source: str = "locust"

    def line(self) -> str:
        """The one line other tools parse (issue 5's interface)."""
        return (f"profile={self.profile} rps={self.rps:.2f} p50_ms={_num(self.p50_ms)} p95_ms={_num(self.p95_ms)} "
                f"p99_ms={_num(self.p99_ms)} failures={self.failures} requests={self.requests}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "", "N/A") else 0.0
    except ValueError:
        return 0.0


def read_stats(out: Path, profile: str) -> Summary:
    """Read ``locust_stats.csv`` (and ``locust_failures.csv``, ``knee.json``) from ``out``."""
    summary = Summary(profile)
    stats = out / "locust_stats.csv"
    if not stats.exists():
        summary.notes.append("Locust wrote no statistics (did it start?); see locust.log")
    else:
        _read_locust_stats(stats, summary)
    failures = out / "locust_failures.csv"
    if failures.exists():
        with open(failures, newline="", encoding="utf-8") as fh:
            rows = sorted(csv.DictReader(fh), key=lambda r: -int(r["Occurrences"]))
        summary.top_failures = [{"name": r["Name"], "error": r["Error"], "count": int(r["Occurrences"])}
                                for r in rows[:10]]
    knee = out / "knee.json"
    if knee.exists():
        summary.knee = json.loads(knee.read_text(encoding="utf-8"))
    _from_samples(summary, samples_mod.read(out))
    return summary


def _read_locust_stats(stats: Path, summary: Summary) -> None:
    with open(stats, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            entry: NameStats = {
                "method": row["Type"], "name": row["Name"], "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]), "rps": _float(row["Requests/s"]),
                "p50_ms": _float(row["50%"]), "p95_ms": _float(row["95%"]), "p99_ms": _float(row["99%"]),
            }
            if row["Name"] == "Aggregated":
                summary.rps, summary.requests, summary.failures = entry["rps"], entry["requests"], entry["failures"]
                summary.p50_ms, summary.p95_ms, summary.p99_ms = entry["p50_ms"], entry["p95_ms"], entry["p99_ms"]
            else:
                summary.by_name.append(entry)


def _from_samples(summary: Summary, taken: list[samples_mod.Sample]) -> None:
    """Counts and percentiles from every request's sample; Locust's request rates kept."""
    if not taken:
        return
    summary.source = "samples"
    whole = samples_mod.figures(taken)
    # Locust's rate is requests over its run time: scale it to the samples' count (a worker's
    # last report may reach the master after it stopped counting).
    span = (summary.requests / summary.rps if summary.rps > 0 and summary.requests
            else max(s.t for s in taken) - min(s.t for s in taken))
    summary.requests, summary.failures = int(whole["requests"]), int(whole["failures"])
    summary.p50_ms, summary.p95_ms, summary.p99_ms = (float(whole["p50_ms"]), float(whole["p95_ms"]),
                                                      float(whole["p99_ms"]))
    if span:
        summary.rps = round(summary.requests / span, 2)
    methods = {e["name"]: e["method"] for e in summary.by_name}
    rates = {e["name"]: e["rps"] for e in summary.by_name}
    by_name: dict[str, list[samples_mod.Sample]] = {}
    for s in taken:
        by_name.setdefault(s.name, []).append(s)
    summary.by_name = []
    for name in sorted(by_name):
        f = samples_mod.figures(by_name[name])
        summary.by_name.append({
            "method": methods.get(name, by_name[name][0].method), "name": name, "requests": int(f["requests"]),
            "failures": int(f["failures"]), "rps": rates.get(name, 0.0), "p50_ms": float(f["p50_ms"]),
            "p95_ms": float(f["p95_ms"]), "p99_ms": float(f["p99_ms"])})
    ocsp = [s for s in taken if s.ocsp]
    if ocsp:
        summary.ocsp = {**samples_mod.figures(ocsp), "rps": round(len(ocsp) / span, 2) if span else 0.0}


def write_summary(summary: Summary, out: Path) -> None:
    (out / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    lines = [(f"profile {summary.profile}: {summary.requests} requests, {summary.failures} failures, "
              f"{summary.rps:.2f} req/s, p50 {summary.p50_ms:g} ms, p95 {summary.p95_ms:g} ms, "
              f"p99 {summary.p99_ms:g} ms")]
    if summary.ocsp is not None:
        o = summary.ocsp
        lines.append(f"OCSP: {o['requests']} requests, {o['failures']} failures, {o['rps']:.2f} req/s, "
                     f"p50 {o['p50_ms']:g} ms, p95 {o['p95_ms']:g} ms, p99 {o['p99_ms']:g} ms")
    if summary.source == "samples":
        lines.append("(counts and percentiles: every request's sample, samples-*.csv; the plot draws the same)")
    lines.append("")
    lines.append(f"{'name':34s} {'requests':>9s} {'failures':>9s} {'req/s':>9s} {'p50':>6s} {'p95':>6s} {'p99':>6s}")
    for e in summary.by_name:
        lines.append(f"{e['method'] + ' ' + e['name']:34s} {e['requests']:9d} {e['failures']:9d} {e['rps']:9.2f} "
                     f"{e['p50_ms']:6g} {e['p95_ms']:6g} {e['p99_ms']:6g}")
    if summary.top_failures:
        lines += ["", "failures:"] + [f"  {f['count']} x {f['name']}: {f['error']}" for f in summary.top_failures]
    if summary.knee is not None:
        lines += ["", knee_line(summary.knee)]
    lines += [f"note: {n}" for n in summary.notes]
    (out / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def knee_line(knee: dict[str, Any]) -> str:
    k = knee.get("knee")
    if k is None:
        return f"knee: none sustained (stopped: {knee.get('stopped_by')})"
    why = knee.get("stopped_by") or "run ended before any limit was reached: the knee is higher"
    return (f"knee: {k['achieved_rps']:.1f} req/s sustained (target {k['target_rps']:.1f}), p99 {k['p99_ms']} ms, "
            f"failures {k['failures']}/{k['requests']} (next: {why})")


#: how each percentile is drawn: different colours, dashes and widths, so that two percentiles
#: with the same value (p95 = p99 on a quiet run) still show as two lines, one over the other.
STYLES = {"p50": ("tab:green", "-", 2.6), "p95": ("tab:orange", "--", 2.0), "p99": ("tab:purple", ":", 2.4)}
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: the plot's time resolution: at most this many buckets, at least a second each.
MAX_BUCKETS = 60


def sim_label(week_hour: float) -> str:
    """A simulated week hour as ``Mon 06:30`` (hour 0 = Monday 00:00 JST, docs/loadtest.md)."""
    minutes = round(week_hour * 60) % (168 * 60)
    return f"{DAYS[minutes // 1440]} {minutes % 1440 // 60:02d}:{minutes % 60:02d}"


def plot_data(out: Path, summary: Summary) -> dict[str, Any]:
    """What ``plot.png`` draws, as numbers (written to ``plot.json``): OCSP request and failure
    rates against the plan's OCSP target (both count OCSP lookups only), the OCSP latency
    percentiles per time bucket, and the whole run's OCSP percentiles as in ``summary``."""
    taken = [s for s in samples_mod.read(out) if s.ocsp]
    spec = PlanSpec.load(out / "plan.json") if (out / "plan.json").exists() else None
    plan = Plan(spec) if spec is not None else None
    fy2020 = spec is not None and spec.profile == "fy2020"
    end = max((s.t for s in taken), default=0.0)
    bucket = float(max(1, math.ceil(end / MAX_BUCKETS)))
    count = max(1, math.ceil(end / bucket)) if taken else 0
    edges = [i * bucket for i in range(count)] + [max(end, bucket)] if taken else [0.0]
    if count > 1 and end - edges[-2] < bucket / 2:
        del edges[-2]  # a last sliver of a bucket joins the one before: its own rate would be noise
    groups: list[list[samples_mod.Sample]] = [[] for _ in range(len(edges) - 1)]
    for s in taken:
        groups[min(len(groups) - 1, bisect.bisect_right(edges, s.t) - 1)].append(s)
    data: dict[str, Any] = {
        "profile": spec.profile if spec else summary.profile, "bucket_seconds": bucket,
        "x_axis": "simulated time, JST (week hour: 0 = Monday 00:00)" if fy2020 else "seconds since start",
        "t": [], "width": [], "x": [], "ocsp_rps": [], "ocsp_failures_per_s": [], "target_ocsp_rps": [],
        "percentiles": {k: [] for k in samples_mod.PERCENTILES},
        "whole_run": {k: (summary.ocsp or {}).get(f"{k}_ms") for k in samples_mod.PERCENTILES},
    }
    for i, group in enumerate(groups):
        start, width = edges[i], edges[i + 1] - edges[i]
        mid = start + width / 2
        data["t"].append(mid)
        data["width"].append(width)
        # fy2020: the simulated week hour (Plan.week_hour without the wrap at 168, so the axis keeps
        # increasing past Sunday midnight; sim_label names the day).
        data["x"].append(round(spec.start_hour + mid * 24.0 / spec.day_seconds, 4) if fy2020 and spec else mid)
        data["ocsp_rps"].append(round(len(group) / width, 2) if width > 0 else 0.0)
        data["ocsp_failures_per_s"].append(round(sum(1 for s in group if not s.ok) / width, 2) if width > 0 else 0.0)
        data["target_ocsp_rps"].append(round(plan.ocsp_rate(mid), 2) if plan else None)
        times = sorted(s.ms for s in group)
        for key, fraction in samples_mod.PERCENTILES.items():
            data["percentiles"][key].append(samples_mod.percentile(times, fraction) if times else None)
    return data


def figure(data: dict[str, Any], title: str) -> Figure:
    """The plot of :func:`plot_data`'s numbers; nothing drawn is computed here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    x = data["x"]
    nan = float("nan")
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 7), sharex=True)
    ax1.plot(x, data["ocsp_rps"], label="OCSP requests/s (achieved)", color="tab:blue", marker=".")
    if any(v is not None for v in data["target_ocsp_rps"]):
        ax1.plot(x, [nan if v is None else v for v in data["target_ocsp_rps"]], label="OCSP requests/s (plan target)",
                 color="tab:gray", linestyle="--")
    ax1.plot(x, data["ocsp_failures_per_s"], label="OCSP failures/s", color="tab:red")
    ax1.set_ylabel("OCSP requests per second")
    # Legends beside the axes, never over the lines they name.
    ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax1.grid(alpha=0.3)
    ax1.set_title(title)
    per = f"{data['bucket_seconds']:g} s"
    for key, (color, dashes, width) in STYLES.items():
        ys = [nan if v is None else v for v in data["percentiles"][key]]
        ax2.plot(x, ys, label=f"{key} per {per}", color=color, linestyle=dashes, linewidth=width, marker=".")
        whole = data["whole_run"].get(key)
        if whole is not None and x:
            ax2.plot([x[0], x[-1]], [whole, whole], label=f"{key} whole run: {whole:g} ms", color=color,
                     linestyle=dashes, linewidth=1.0, alpha=0.6)
    # Log scale: a p99 of tens of ms and a p50 of 1 ms both stay readable.
    if any(v for vs in data["percentiles"].values() for v in vs if v):
        ax2.set_yscale("log")
    ax2.set_ylabel("OCSP response time (ms)")
    ax2.set_xlabel(data["x_axis"])
    if data["x_axis"].startswith("simulated"):
        ax2.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: sim_label(v)))
    ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def plot(out: Path, title: str, summary: Summary) -> Path | None:
    """``plot.json`` (the numbers) and ``plot.png`` (their picture)."""
    import matplotlib.pyplot as plt

    data = plot_data(out, summary)
    (out / "plot.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    fig = figure(data, title)
    path = out / "plot.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
