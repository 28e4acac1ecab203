"""loadtest/bench_ocsp_python.py runs end to end and prints its line (behaviour, not speed)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def test_prints_the_python_costs_beside_the_signature(tmp_path):
    done = subprocess.run([sys.executable, "-m", "jpki_mock.loadtest.bench.ocsp_python", "--holders", "20",
                           "--requests", "2000", "--repeats", "3"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    m = re.fullmatch(r"cached_python_us=([\d.]+) ceiling_app_us=([\d.]+) nonced_python_us=([\d.]+) "
                     r"nonced_total_us=([\d.]+) sign_us=([\d.]+) cached_logged_us=([\d.]+) "
                     r"cached_logged_json_us=([\d.]+)", done.stdout.strip())
    assert m, done.stdout
    cached, ceiling, python, total, sign, logged, logged_json = map(float, m.groups())
    # the access log adds to a cached answer (it formats and queues a line per request)
    assert cached < logged and cached < logged_json
    # with the real signature a request costs at least the signature; without it, far less
    assert 0 < python < sign and python < total
    # a pre-signed answer costs more than fixed bytes and less than signing one
    assert 0 < ceiling < cached < python
    assert "could not flush" not in done.stderr  # the counters thread stopped before the data went


@pytest.mark.parametrize("flag", ["--holders", "--requests", "--repeats"])
def test_counts_below_one_are_refused(flag):
    done = subprocess.run([sys.executable, "-m", "jpki_mock.loadtest.bench.ocsp_python", flag, "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "must be at least 1" in done.stderr


def test_a_failing_setup_is_a_clear_error_not_a_traceback():
    import os

    env = dict(os.environ, JPKI_MOCK_OCSP_WORKERS="abc")  # a configuration `jpki-mock init` refuses
    done = subprocess.run([sys.executable, "-m", "jpki_mock.loadtest.bench.ocsp_python", "--holders", "2"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert "error: `jpki-mock init` failed (5)" in done.stderr and "JPKI_MOCK_OCSP_WORKERS" in done.stderr
    assert "Traceback" not in done.stderr
