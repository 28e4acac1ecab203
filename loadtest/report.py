"""After a run: Locust's CSV files -> a summary (JSON + text) and a PNG of rate and latency."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict


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
        return summary
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
    failures = out / "locust_failures.csv"
    if failures.exists():
        with open(failures, newline="", encoding="utf-8") as fh:
            rows = sorted(csv.DictReader(fh), key=lambda r: -int(r["Occurrences"]))
        summary.top_failures = [{"name": r["Name"], "error": r["Error"], "count": int(r["Occurrences"])}
                                for r in rows[:10]]
    knee = out / "knee.json"
    if knee.exists():
        summary.knee = json.loads(knee.read_text(encoding="utf-8"))
    return summary


def write_summary(summary: Summary, out: Path) -> None:
    (out / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    lines = [(f"profile {summary.profile}: {summary.requests} requests, {summary.failures} failures, "
              f"{summary.rps:.2f} req/s, p50 {summary.p50_ms:g} ms, p95 {summary.p95_ms:g} ms, "
              f"p99 {summary.p99_ms:g} ms"), ""]
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


def _history(out: Path) -> tuple[list[float], dict[str, list[float]]]:
    path = out / "locust_stats_history.csv"
    t: list[float] = []
    cols: dict[str, list[float]] = {"rps": [], "fails": [], "p50": [], "p95": [], "p99": [], "users": []}
    if not path.exists():
        return t, cols
    t0 = None
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] != "Aggregated":
                continue
            ts = _float(row["Timestamp"])
            t0 = ts if t0 is None else t0
            t.append(ts - t0)
            cols["rps"].append(_float(row["Requests/s"]))
            cols["fails"].append(_float(row["Failures/s"]))
            cols["p50"].append(_float(row["50%"]))
            cols["p95"].append(_float(row["95%"]))
            cols["p99"].append(_float(row["99%"]))
            cols["users"].append(_float(row["User Count"]))
    return t, cols


def plot(out: Path, title: str) -> Path | None:
    """``plot.png``: request rate (achieved, failures, the plan's OCSP target) and latency over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, cols = _history(out)
    target_t, target = [], []
    target_file = out / "target.csv"
    if target_file.exists():
        with open(target_file, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                target_t.append(_float(row["t"]))
                target.append(_float(row["target_ocsp_rps"]))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    ax1.plot(t, cols["rps"], label="requests/s (all)", color="tab:blue")
    ax1.plot(t, cols["fails"], label="failures/s", color="tab:red")
    if target:
        ax1.plot(target_t, target, label="OCSP target/s (plan)", color="tab:gray", linestyle="--")
    ax1.set_ylabel("requests per second")
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    ax1.set_title(title)
    for key, color in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:purple")):
        ax2.plot(t, cols[key], label=key, color=color)
    ax2.set_ylabel("response time (ms)")
    ax2.set_xlabel("seconds since start")
    ax2.legend(loc="upper left")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "plot.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
