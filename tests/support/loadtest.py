"""Helpers for the load-test tests: corpus surgery and running `jpki-mock loadtest run`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(r"^profile=(\S+) rps=([\d.]+) p50_ms=([\d.]+) p95_ms=([\d.]+) p99_ms=([\d.]+) "
                       r"failures=(\d+) requests=(\d+)$")


def only(data: dict, category: str, **expect) -> dict:
    """A copy of a corpus keeping one category, optionally with its expectation overwritten."""
    out = json.loads(json.dumps(data))
    out["items"] = [i for i in out["items"] if i["category"] == category]
    for item in out["items"]:
        item["expect"].update(expect)
    return out


def run_loadtest(*args: str, env: dict | None = None, timeout: float = 240) -> tuple[dict, str]:
    """Run `jpki-mock loadtest run ...`; returns the parsed last line and the whole output."""
    done = subprocess.run([sys.executable, "-m", "jpki_mock.cli", "loadtest", "run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    last = done.stdout.strip().splitlines()[-1]
    m = LAST_LINE.match(last)
    assert m, f"last line {last!r} is not the summary line\n{output}"
    keys = ("profile", "rps", "p50_ms", "p95_ms", "p99_ms", "failures", "requests")
    values = dict(zip(keys, m.groups(), strict=True))
    for k in ("failures", "requests"):
        values[k] = int(values[k])
    for k in ("rps", "p50_ms", "p95_ms", "p99_ms"):
        values[k] = float(values[k])
    return values, output
