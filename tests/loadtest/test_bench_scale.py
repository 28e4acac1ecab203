"""loadtest/bench/scale.py runs end to end on small stores and prints its line (behaviour, not
speed: the figures of a run this small mean nothing, docs/loadtest.md has the real ones)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT

NUMBER = r"\d+(?:\.\d+)?"
LINE = re.compile(
    rf"small=4000 large=8000 cached_ratio={NUMBER} cold_ratio={NUMBER} cached_p99_ratio={NUMBER} "
    rf"cold_p99_ratio={NUMBER} rss_mb_per_worker=(?P<rss>{NUMBER}) bytes_per_answer=(?P<bytes>{NUMBER}) "
    rf"seed_records_per_s={NUMBER}")


def test_bench_scale_prints_its_line():
    done = subprocess.run([sys.executable, "-m", "jpki_mock.loadtest.bench.scale", "--small", "4000", "--large", "8000",
                           "--hot", "64", "--seconds", "1", "--warm-seconds", "1", "--cold-seconds", "1",
                           "--rounds", "2", "--cold-serials", "3000", "--rss-seconds", "2",
                           "--measure-answers", "20"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    match = LINE.fullmatch(lines[-1])
    assert match, done.stdout + done.stderr
    # The in-process measure of a real answer: at least its DER (an RSA-2048 response), and
    # what the server's budget charged is its upper bound.
    assert 1000 < float(match["bytes"]) < float(lines[-4].split()[-1]) + 1
    assert float(match["rss"]) > 20
    assert any(line.startswith("large ") for line in lines), done.stdout
