"""``make bench-crl`` keeps working: a tiny run prints the machine-readable last line (no timing asserted)."""

from __future__ import annotations

import re

from jpki_mock.loadtest.bench import crl as bench_crl


def test_small_benchmark_run_prints_the_summary_line(capsys):
    assert bench_crl.main(["--entries", "3000", "--rounds", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"crl_entries=3000 stream_s=[0-9.]+ stream_peak_mb=[0-9.]+ "
                        r"builder_s=[0-9.]+ builder_peak_mb=[0-9.]+", last), last
