"""Java as a relying party: tests/interop/java/JpkiVerify.java, compiled with javac, validates
the scenario catalog's certificates through ``CertPathValidator`` (PKIX) against a running
mock, by OCSP only and by CRL only, fetched from the URLs in each certificate.

Each case's outcome, and for a revocation the ``java.security.cert.CRLReason`` Java reports,
must equal the catalog manifest's expectation.  Two cases are added to the catalog's: a valid
certificate validated after its notAfter (``PKIXParameters.setDate``), and a certificate of the
previous CA generation checked against the current generation's root only.  And with
``PKIXParameters``' defaults (``mode defaults``) both kinds of certificate are refused for their
critical policy qualifiers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jpki_mock.vocab import Reason
from tests.support.catalog import catalog_server
from tests.support.java import compile_verifier, run_verifier

pytestmark = [pytest.mark.server, pytest.mark.slow]

MODES = ("ocsp", "crl")
#: catalog items whose broken CRL or OCSP response is a file: the JDK fetches its own from the mock
SKIPPED_FILES = ("crl", "ocsp_response")
#: the JDK's message when PKIXParameters keeps its default setPolicyQualifiersRejected(true)
QUALIFIERS_REJECTED = "critical policy qualifiers present in certificate"


def java_cases(out: Path, manifest: dict[str, Any]) -> list[tuple[str, str, Path, list[Path], str, dict[str, str]]]:
    """(name, mode, certificate, anchors, date, expected) for every case."""
    roots = [out / i["pem"] for i in manifest["issuers"]]
    cases = []
    for item in manifest["items"]:
        files = item["files"]
        if "pem" not in files or any(k in files for k in SKIPPED_FILES):
            continue
        for mode in MODES:
            if mode in item["checks"]:
                cases.append((item["name"], mode, out / files["pem"], roots, "-", item["expected"]))
    valid = next(i for i in manifest["items"] if i["name"] == "valid-sign")
    after = datetime.fromisoformat(valid["not_after"]) + timedelta(days=1)
    previous = next(i for i in manifest["items"] if i["name"] == "valid-sign-previous-generation")
    current_root = next(out / i["pem"] for i in manifest["issuers"]
                        if i["kind"] == "sign" and i["generation"] == valid["generation"])
    for mode in MODES:
        cases.append(("valid-sign-after-notAfter", mode, out / valid["files"]["pem"], roots,
                      after.strftime("%Y-%m-%dT%H:%M:%SZ"), {"outcome": "expired"}))
        cases.append(("previous-generation-vs-current-root", mode, out / previous["files"]["pem"], [current_root],
                      "-", {"outcome": "unknown_issuer"}))
    for kind in ("sign", "auth"):
        item = next(i for i in manifest["items"] if i["name"] == f"valid-{kind}")
        cases.append((f"valid-{kind}", "defaults", out / item["files"]["pem"], roots, "-", {"outcome": "error"}))
    return cases


@pytest.fixture(scope="module")
def java_run(tmp_path_factory):
    """Compile once, run every case in one JVM; returns (cases, {(name, mode): (outcome, reason)}, table)."""
    work = tmp_path_factory.mktemp("java")
    classes = compile_verifier(work / "classes")
    with catalog_server(work / "data") as (_srv, out, manifest):
        cases = java_cases(out, manifest)
        rows, table = run_verifier(classes, work / "cases.tsv", [c[:5] for c in cases])
    print(table)  # the table of outcomes, in the test log (`pytest -s` shows it)
    return cases, rows, table


def test_every_case_has_a_row(java_run):
    cases, rows, table = java_run
    assert {(c[0], c[1]) for c in cases} == set(rows), table
    outcomes = {c[5]["outcome"] for c in cases}
    # the brief of the test: good, revoked, held, expired and the wrong generation, both kinds
    assert {"valid", "revoked", "expired", "unknown_issuer", "bad_signature"} <= outcomes
    reasons = {c[5].get("reason") for c in cases}
    assert {r.rfc_name for r in Reason} <= reasons, "every JPKI revocation reason is checked"
    assert {c[0].rsplit("-", 1)[-1] for c in cases} >= {"sign", "auth"}


def test_outcomes_match_the_manifest(java_run):
    cases, rows, table = java_run
    wrong = []
    for name, mode, _cert, _anchors, _date, expected in cases:
        outcome, reason = rows[name, mode]
        if mode == "defaults":
            # PKIX's defaults refuse every JPKI end-entity certificate: the reason for the
            # setPolicyQualifiersRejected(false) every other case sets.
            if outcome != "error" or QUALIFIERS_REJECTED not in reason:
                wrong.append(f"{name} with defaults: Java says {outcome} {reason}")
            continue
        want = (expected["outcome"], Reason.from_name(expected["reason"]).name if "reason" in expected else "-")
        if (outcome, reason) != want:
            wrong.append(f"{name} by {mode}: Java says {outcome} {reason}, expected {want[0]} {want[1]}")
    assert not wrong, "\n".join(wrong) + "\n" + table
