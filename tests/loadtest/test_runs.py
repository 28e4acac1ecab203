"""`jpki-mock loadtest run` end to end against the local mock: each profile for a few seconds.

One data directory is initialised and seeded once (the CLI, as a user would); every run then
seeds nothing, builds its corpus, publishes CRLs, starts `jpki-mock serve` on 127.0.0.1,
runs Locust headless and stops everything.  The figures are not asserted (no timed tests);
correctness is: zero failures on a correct server, failures when the corpus is wrong.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import pytest

from tests.loadtest.test_report import summary_txt_ocsp
from tests.support.loadtest import ROOT, only, run_loadtest

pytestmark = [pytest.mark.server, pytest.mark.slow]
HOLDERS = "150"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data = tmp_path_factory.mktemp("lt") / "data"
    env = {**os.environ, "JPKI_MOCK_DATA": str(data), "JPKI_MOCK_KEY_PASSPHRASE": "test-passphrase"}
    for args in (["init"], ["seed", "--holders", HOLDERS, "--seed", "5", "--no-progress"]):
        subprocess.run([sys.executable, "-m", "jpki_mock.cli", *args], env=env, cwd=ROOT, check=True,
                       capture_output=True)
    return env


def common(out):
    return ["--holders", HOLDERS, "--certificates", "200", "--server-workers", "1", "--out", str(out), "--seed", "11"]


def assert_clean(line, output, at_least=1):
    assert line["requests"] >= at_least, output
    assert line["failures"] == 0, output


def test_fy2020_follows_the_compressed_curve(env, tmp_path):
    out = tmp_path / "fy2020"
    # A simulated day every 6 s from Monday 06:00 JST: the morning ramp shows in the target.
    line, output = run_loadtest("--profile", "fy2020", "--duration", "6s", "--day-seconds", "6", "--start-hour", "6",
                                "--scale", "5", *common(out), env=env)
    assert line["profile"] == "fy2020"
    assert_clean(line, output)
    with open(out / "target.csv", newline="") as fh:
        targets = [float(r["target_ocsp_rps"]) for r in csv.DictReader(fh)]
    assert max(targets) > 3 * min(targets)  # night to morning peak
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = {e["name"] for e in json.loads((out / "summary.json").read_text())["by_name"]}
    assert any(n.startswith("ocsp auth") for n in names)
    # Progress while it ran: rate, the OCSP target, failures and the simulated JST time.
    progress = [ln for ln in output.splitlines() if ln.startswith("progress ")]
    assert progress, output
    for ln in progress:
        assert re.fullmatch(r"progress +\d+ s: OCSP +[\d.]+ req/s \(target [\d.]+\), all +[\d.]+ req/s, "
                            r"failures 0 of \d+, simulated (Mon|Tue) \d\d:\d\d JST", ln), ln
    # The plot's numbers: OCSP against the OCSP target, x in simulated hours from Monday 06:00,
    # the whole run's percentiles equal to summary.txt's.
    data = json.loads((out / "plot.json").read_text())
    txt = summary_txt_ocsp(out)
    assert data["whole_run"] == {k: txt[k] for k in ("p50", "p95", "p99")}
    assert all(x == pytest.approx(6 + t * 4) for t, x in zip(data["t"], data["x"], strict=True))
    assert sum(r * w for r, w in zip(data["ocsp_rps"], data["width"], strict=True)) == pytest.approx(txt["requests"],
                                                                                                    abs=0.5)


def test_peak_with_two_distributed_workers(env, tmp_path):
    out = tmp_path / "peak"
    line, output = run_loadtest("--profile", "peak", "--duration", "6s", "--multiplier", "2", "--workers", "2",
                                *common(out), env=env)
    assert line["profile"] == "peak"
    assert_clean(line, output, at_least=20)
    assert "2 workers connected" in (out / "locust-master.log").read_text()
    tallies = [json.loads(p.read_text()) for p in out.glob("requests-worker-*.json")]
    assert len(tallies) == 2 and all(t["requests"] > 0 for t in tallies), tallies
    assert sum(t["requests"] for t in tallies) >= line["requests"]


def test_stress_reports_a_knee(env, tmp_path):
    out = tmp_path / "stress"
    # Tripling every 2 s from 30 req/s with at most 10 users (100 req/s): the second step falls short.
    line, output = run_loadtest("--profile", "stress", "--duration", "20s", "--start-rate", "30", "--step-factor", "3",
                                "--step-seconds", "2", "--users", "10", "--classes", "auth,sign", *common(out), env=env)
    assert line["profile"] == "stress" and line["requests"] > 0
    knee = json.loads((out / "knee.json").read_text())
    assert knee["steps"], knee
    assert "knee:" in output


def test_soak_counts_a_deliberately_wrong_expectation(env, tmp_path):
    corpus_path = tmp_path / "corpus.json"
    subprocess.run([sys.executable, "-m", "jpki_mock.cli", "loadtest", "corpus", "--certificates", "200", "--out",
                    str(corpus_path)], env=env, cwd=ROOT, check=True, capture_output=True)
    data = json.loads(corpus_path.read_text())
    # Revoked certificates, wrongly expected good; good ones expected right: half the lookups each.
    wrong = only(data, "revoked", status="good", reason=None, revoked_at=None)
    right = only(data, "good")
    data["items"] = wrong["items"] + right["items"]
    data["mix"] = {"good": 0.5, "revoked": 0.5}
    corpus_path.write_text(json.dumps(data))
    out = tmp_path / "soak"
    line, output = run_loadtest("--profile", "soak", "--duration", "5s", "--rate", "30", "--classes", "auth,sign",
                                "--corpus", str(corpus_path), *common(out), env=env)
    assert 0 < line["failures"] < line["requests"], output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["top_failures"]
    assert all("revoked" in f["error"] and "certStatus revoked, expected good" in f["error"]
               for f in summary["top_failures"])


@pytest.mark.parametrize("args,message", [
    (["--profile", "soak", "--duration", "soon"], "--duration: 'soon' is not a duration"),
    (["--profile", "soak", "--duration", "0"], "must be longer than 0"),
    (["--profile", "soak", "--target", "ftp://example"], "--target: 'ftp://example' is not an http(s) URL"),
    (["--profile", "soak", "--target", "http://127.0.0.1:9"], "--corpus: is required with --target"),
    (["--profile", "stress", "--step-factor", "1"], "step-factor"),
    (["--profile", "soak", "--classes", "auth,robots"], "classes"),
    (["--profile", "soak", "--scale", "0"], "scale"),
    (["--profile", "flood"], "'flood' is not one of"),
])
def test_bad_input_is_refused_before_anything_starts(tmp_path, args, message):
    from click.testing import CliRunner

    from jpki_mock.cli import main

    result = CliRunner().invoke(main, ["loadtest", "run", *args, "--out", str(tmp_path / "o")],
                                env={"JPKI_MOCK_DATA": str(tmp_path / "untouched")})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "untouched").exists() and not (tmp_path / "o").exists()


def test_peak_over_a_lazily_seeded_population_asks_first_lookups(tmp_path):
    data = tmp_path / "national" / "data"
    env = {**os.environ, "JPKI_MOCK_DATA": str(data), "JPKI_MOCK_KEY_PASSPHRASE": "test-passphrase"}
    for args in (["init"], ["seed", "--lazy", "--holders", "1500", "--seed", "5", "--no-progress"]):
        subprocess.run([sys.executable, "-m", "jpki_mock.cli", *args], env=env, cwd=ROOT, check=True,
                       capture_output=True)
    out = tmp_path / "national" / "peak"
    line, output = run_loadtest("--profile", "peak", "--duration", "6s", "--multiplier", "5", "--classes", "auth,sign",
                                "--holders", "1500", "--certificates", "100", "--population", "2000",
                                "--repeat-share", "0.1", "--server-workers", "1", "--out", str(out), "--seed", "11",
                                env=env)
    assert line["profile"] == "peak"
    assert_clean(line, output, at_least=20)
    # Status only: answering every lookup signed no certificate.
    import sqlite3

    with sqlite3.connect(data / "jpki.db") as db:
        assert db.execute("SELECT count(der), count(*) FROM certificates").fetchone()[0] == 0
