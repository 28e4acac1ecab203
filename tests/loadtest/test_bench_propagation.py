"""loadtest/bench/propagation.py runs end to end and prints its line (behaviour, not speed)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT, pg_url

LINE = re.compile(r"revocations=5 p50_ms=\d+\.\d p99_ms=\d+\.\d max_ms=\d+\.\d stale=\d+")


def test_bench_propagation_prints_its_line():
    base = pg_url()
    assert base, "run the tests with tests/run.py (it starts PostgreSQL)"
    done = subprocess.run([sys.executable, "-m", "jpki_mock.loadtest.bench.propagation", "--revocations", "5",
                           "--database-url", base, "--max-seconds", "120"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    assert lines and LINE.fullmatch(lines[-1]), done.stdout + done.stderr
    assert any(line.startswith("revoked 5/5: ") for line in lines), done.stdout
