"""A wrong answer is a failure: the whole generator (Locust, checks, summary line) against a fake target.

The fake target signs real OCSP responses with whatever status the test picks; the corpus
comes from a seeded store.  Right answers give zero failures, so the failures counted for
wrong answers come from the status check and nothing else.
"""

import json

import pytest
from cryptography import x509

from jpki_mock.loadtest import corpus
from tests.support.fake_ocsp_target import FakeTarget, build_response, make_ca
from tests.support.loadtest import only, run_loadtest

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def good_corpus(seeded, tmp_path_factory):
    data = corpus.build(seeded, 60, seed=2, progress=False)
    return corpus.write(only(data, "good"), tmp_path_factory.mktemp("fake") / "good.json")


@pytest.fixture(scope="module")
def ca():
    return make_ca()


def soak(target, corpus_path, out):
    # 40 OCSP req/s for 4 s, verifiers only: GET and POST, SHA-1 and SHA-256, with and without nonces.
    return run_loadtest("--profile", "soak", "--duration", "4s", "--rate", "40", "--target", target,
                        "--corpus", str(corpus_path), "--classes", "auth,sign", "--nonce-share", "0.3",
                        "--sha256-share", "0.5", "--out", str(out))


def test_right_answers_count_no_failures(good_corpus, ca, tmp_path):
    cert, key = ca
    with FakeTarget(lambda der: (200, build_response(der, cert, key, "good"))) as fake:
        line, output = soak(fake.base, good_corpus, tmp_path / "out")
    assert line["profile"] == "soak"
    assert line["requests"] >= 40 and line["failures"] == 0, output
    assert fake.requests >= line["requests"]  # a request in flight at the stop is not counted
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    names = {e["name"] for e in summary["by_name"]}
    assert {"ocsp auth GET", "ocsp auth POST"} <= names
    for report in ("report.html", "locust_stats.csv", "locust_stats_history.csv", "summary.txt", "plot.png"):
        assert (tmp_path / "out" / report).stat().st_size > 0


def test_wrong_status_counts_as_failure(good_corpus, ca, tmp_path):
    cert, key = ca

    def revoked(der):
        return 200, build_response(der, cert, key, "revoked", reason=x509.ReasonFlags.superseded)

    with FakeTarget(revoked) as fake:
        line, output = soak(fake.base, good_corpus, tmp_path / "out")
    assert line["requests"] >= 40 and line["failures"] == line["requests"], output
    failures = (tmp_path / "out" / "summary.txt").read_text()
    assert "certStatus revoked, expected good" in failures

