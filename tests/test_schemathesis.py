"""schemathesis fuzzes the admin API from its OpenAPI document against a live server (127.0.0.1).

Two bounded runs of schemathesis' own CLI (``st run``) against one ``jpki-mock serve``:

1. positive: data the document allows, every phase (examples, boundary coverage, fuzzing and
   the stateful phase following the document's links).  Checks: no 5xx, every status, content
   type, required header and body as documented, and a 405 with ``Allow`` for other methods;
2. negative: only data the document forbids.  The same checks, plus that every such request is
   rejected (4xx), and the store (every table, the revocation sequence, the time-travel offset)
   is the same after the run as before it.

``POST /admin/api/seed`` is left out of the positive run only: its documented maximum (10,000
holders, 20,000 certificates) is a boundary the coverage phase always tries, a few minutes of
work per example; tests/test_openapi.py drives it, and the negative run covers its input.

Bounds: JPKI_MOCK_SCHEMATHESIS_EXAMPLES examples per operation and phase (default 2) and a
fixed seed (JPKI_MOCK_SCHEMATHESIS_SEED) so a failure replays; about a minute each on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from jpki_mock.apidoc import document, operations
from tests.support import HOLDER, Server, open_runtime
from tests.support.store import snapshot

EXAMPLES = os.environ.get("JPKI_MOCK_SCHEMATHESIS_EXAMPLES", "2")
SEED = os.environ.get("JPKI_MOCK_SCHEMATHESIS_SEED", "1")
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance"]
#: an admin token of its own, so a fuzzed DELETE /tokens/{label} cannot lock the run out
FUZZ_LABEL = "schemathesis-run-7f3a"


def st_run(server: Server, token: str, report: Path, *args: str) -> tuple[dict[str, Any], str]:
    """One ``st run`` against ``server``; its JSON report and its console output."""
    st = Path(sys.executable).with_name("st")
    command = [str(st), "run", f"{server.base}/admin/api/openapi.json", "-H", f"Authorization: Bearer {token}",
               "--max-examples", EXAMPLES, "--seed", SEED, "--workers", "1",
               # publishing every CRL stream at once takes longer than schemathesis' default 10 s
               # on two shared cores; a slow answer is not what this test looks for
               "--request-timeout", "120",
               "--report-json-path", str(report), *args]
    # cwd: schemathesis keeps a cache directory (.schemathesis/) where it runs, not in the repository
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=report.parent,
                          env={**os.environ, "NO_COLOR": "1"})
    output = proc.stdout + proc.stderr
    assert report.exists(), f"st run wrote no report (exit {proc.returncode}):\n{output}"
    result = json.loads(report.read_text())
    assert proc.returncode == 0 and result["exit_code"] == 0, f"st run exited {proc.returncode}:\n{output}"
    assert result["failures"] == [] and result["errors"] == [], output
    assert result["test_cases"]["with_failures"] == 0 and result["test_cases"]["errored"] == 0, output
    ops = result["operations"]
    assert ops["errored"] == 0 and ops["tested"] + ops["skipped"] == ops["selected"], output
    return result, output


def populate(server: Server, token: str) -> str:
    """A holder with certificates, a holder with a software card and a relying party, at the ids
    and serials the document's examples name; returns the fuzzing run's own token."""
    auth = {"Authorization": f"Bearer {token}"}

    def post(path: str, body: dict[str, Any]) -> Any:
        r = requests.post(f"{server.base}/admin/api{path}", json=body, headers=auth, timeout=60)
        assert r.status_code == 201, r.text
        return r.json()

    assert post("/holders", HOLDER)["id"] == 1
    assert post("/holders/1/certificates", {"pkcs12_passphrase": "pw1234"})[0]["serial"] == 1000001
    card_holder = post("/holders", {**HOLDER, "name": "鈴木\u3000花子"})["id"]
    post(f"/holders/{card_holder}/card", {"auth_pin": "1234", "sign_password": "ABC123"})
    post("/relying-parties", {"name": "clinic"})
    token_: str = post("/tokens", {"label": FUZZ_LABEL})["token"]
    return token_


def case_modes(ndjson: Path) -> dict[str, str]:
    """The generation mode ("positive" or "negative") of every test case of a run, from its
    NDJSON event stream."""
    modes: dict[str, str] = {}
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        for case_id, case in event.get("ScenarioFinished", {}).get("recorder", {}).get("cases", {}).items():
            modes[case_id] = case["value"]["meta"]["generation"]["mode"]
    return modes


def summary(name: str, result: dict[str, Any]) -> str:
    cases = result["test_cases"]
    return (f"schemathesis {result['schemathesis_version']} {name}: {result['operations']['tested']} operations, "
            f"{cases['generated']} test cases, {cases['with_failures']} failures, {cases['errored']} errors, "
            f"{result['running_time']:.0f} s")


@pytest.mark.server
@pytest.mark.slow
def test_schemathesis_against_a_live_server(tmp_path: Path) -> None:
    # The CRL schedule off: it publishes the first CRLs of the generations the positive run rolled
    # over whenever its tick comes, which would look like a refused request changing the store.
    server = Server(tmp_path / "data", {"JPKI_MOCK_TIME_TRAVEL": "1", "JPKI_MOCK_CRL_SCHEDULE": "0"}, workers=1)
    init_token = server.init()
    server.start()
    try:
        token = populate(server, init_token)
        # schemathesis leaves out the URL it loads the document from (GET /admin/api/openapi.json)
        documented = len(operations(document())) - 1

        positive, _ = st_run(server, token, tmp_path / "positive.json", "--mode", "positive", "--report", "json",
                             "--exclude-operation-id", "seed",
                             "--checks", ",".join([*CHECKS, "unsupported_method", "allow_header_conformance"]))
        assert positive["operations"]["selected"] == positive["operations"]["tested"] == documented - 1
        assert all(p["status"] == "success" for p in positive["phases"].values()), positive["phases"]

        # Negative, in two runs.  The coverage phase sends only data the document forbids, each
        # constraint broken in turn; the store (every table, the revocation sequence, the
        # time-travel offset) must be the same after it as before.  (The fuzzing phase mixes in
        # valid requests where it cannot break a constraint, so it runs apart, checked alone.)
        ndjson = tmp_path / "negative.ndjson"
        rt = open_runtime(server.data_dir, init=False, time_travel=True)
        try:
            before = snapshot(rt)
            negative, _ = st_run(server, token, tmp_path / "negative.json", "--mode", "negative",
                                 "--phases", "coverage", "--checks", ",".join([*CHECKS, "negative_data_rejection"]),
                                 "--report", "json,ndjson", "--report-ndjson-path", str(ndjson))
            after = snapshot(rt)
        finally:
            rt.close()
        assert negative["operations"]["selected"] == negative["operations"]["tested"] == documented
        modes = case_modes(ndjson)
        assert len(modes) == negative["test_cases"]["generated"] and set(modes.values()) == {"negative"}
        changed = {k: sorted(set(before[k]) ^ set(after[k])) if isinstance(before[k], list) else (before[k], after[k])
                   for k in before if before[k] != after[k]}
        assert not changed, f"refused requests changed the store: {changed}"
        fuzzed, _ = st_run(server, token, tmp_path / "fuzzed.json", "--mode", "negative", "--phases", "fuzzing",
                           "--checks", ",".join([*CHECKS, "negative_data_rejection"]), "--report", "json")
        # the operations without parameters or body have nothing to break (schemathesis skips them)
        assert fuzzed["operations"]["selected"] == documented and fuzzed["operations"]["tested"] >= documented - 8

        log = server.log.read_text(errors="replace")
        assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]
        print(summary("positive", positive))
        print(summary("negative (coverage)", negative))
        print(summary("negative (fuzzing)", fuzzed))
    finally:
        server.stop()
