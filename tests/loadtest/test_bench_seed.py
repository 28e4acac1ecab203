"""loadtest/bench/seed.py runs end to end and prints its line (behaviour, not speed)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT

RUN = re.compile(r"holders=300 certificates=(\d+) seconds=[\d.]+ certs_per_s=[\d.]+")
LAST = re.compile(r"store=postgresql seed_holders=300 runs=2 certs_per_s_median=[\d.]+ seconds_median=[\d.]+ "
                  r"rsa_sign_per_s_median=\d+ certs_per_sign=[\d.]+")


def test_bench_seed_lazy_into_postgresql_prints_each_run_and_the_medians():
    """Two runs into new databases of a throwaway cluster: the same --seed gives the same
    population each time, and the last line holds their medians."""
    done = subprocess.run([sys.executable, "-m", "jpki_mock.loadtest.bench.seed", "--lazy", "--postgres",
                           "--holders", "300", "--runs", "2", "--settle-seconds", "0"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    runs = [m for line in lines if (m := RUN.fullmatch(line))]
    assert len(runs) == 2 and runs[0].group(1) == runs[1].group(1) and int(runs[0].group(1)) > 300
    assert LAST.fullmatch(lines[-1]), done.stdout
