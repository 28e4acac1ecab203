"""The CLI: the same operations as the API, errors as one line and a non-zero exit code."""

import subprocess

import pytest
from click.testing import CliRunner

from jpki_mock.cli import main
from tests.support import PASSPHRASE


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("JPKI_MOCK_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("JPKI_MOCK_KEY_PASSPHRASE", PASSPHRASE)
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, (result.output, getattr(result, "stderr", ""))
        return result

    run("init")
    return run


def test_init_twice_is_a_clear_error(cli):
    r = cli("init", code=4)
    assert "already has a CA" in r.output and "Traceback" not in r.output
    assert cli("init", "--if-needed").exit_code == 0


def test_ca_show_pem_verifies_issued_cert(cli, tmp_path):
    pem = cli("ca", "show", "--kind", "sign", "--pem").output
    (tmp_path / "ca.pem").write_text(pem)
    r = cli("holder", "add", "--name", "鈴木\u3000一郎", "--dob", "1975-04-01", "--gender", "1",
            "--address", "大阪府大阪市北区1-1")
    assert "municipality 27100" in r.output
    r = cli("cert", "issue", "--holder", "1", "--kind", "sign", "--p12-passphrase", "pw1234",
            "--out", str(tmp_path / "out"))
    pem_path = next(line.split(": ")[-1] for line in r.output.splitlines() if line.startswith("issued"))
    res = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), pem_path],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "sign-1000001.p12").exists()


def test_rollover_then_show_generation(cli):
    cli("ca", "rollover", "--kind", "auth")
    g1 = cli("ca", "show", "--kind", "auth", "--generation", "1", "--pem").output
    g2 = cli("ca", "show", "--kind", "auth", "--generation", "2", "--pem").output
    assert g1 != g2 and g2 == cli("ca", "show", "--kind", "auth", "--pem").output
    r = cli("ca", "show", "--kind", "auth", "--generation", "3", code=3)
    assert "no auth CA generation 3" in r.output


def test_events_and_revocation_from_cli(cli, tmp_path):
    cli("holder", "add", "--name", "鈴木\u3000一郎", "--dob", "319750401", "--gender", "1",
        "--address", "大阪府大阪市北区1-1")
    cli("cert", "issue", "--holder", "1", "--p12-passphrase", "pw1234", "--out", str(tmp_path / "issued"))
    r = cli("holder", "event", "1", "change", "--set", "address=東京都新宿区西新宿2-8-1")
    assert '"reason": "affiliationChanged"' in r.output
    r = cli("cert", "revoke", "--issuer", "auth", "--serial", "1000001", "--reason", "certificateHold")
    assert "revoked auth serial 1000001" in r.output
    r = cli("cert", "release", "--issuer", "auth", "--serial", "1000001", code=4)
    assert "never released" in r.output
    held = cli("cert", "list", "--status", "hold").output.strip().splitlines()
    assert held == [f"auth\t1000001\trevoked\t6\t27100\t{held[0].split()[-1]}"]


@pytest.mark.parametrize("args, code, message", [
    (("holder", "add", "--name", "鈴木 一郎", "--dob", "1975-04-01", "--gender", "1", "--address", "大阪府大阪市1"),
     2, "name:"),
    (("holder", "add", "--name", "鈴木\u3000一郎", "--dob", "619750401", "--gender", "1", "--address", "大阪府大阪市1"),
     2, "unknown era"),
    (("cert", "issue", "--holder", "77", "--p12-passphrase", "pw1234"), 3, "no holder with id 77"),
    (("cert", "revoke", "--issuer", "sign", "--serial", "5", "--reason", "bogus"), 2, "not a JPKI revocation reason"),
    (("holder", "event", "1", "change", "--set", "colour"), 2, "FIELD=VALUE"),
])
def test_cli_errors(cli, args, code, message):
    r = cli(*args, code=code)
    assert message in r.output and "Traceback" not in r.output


def test_seed_prints_summary_line(cli):
    r = cli("seed", "--holders", "30", "--workers", "1", "--no-progress", "--seed", "7")
    last = r.output.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split())
    assert list(fields) == ["holders", "certificates", "seconds", "certs_per_s"]
    assert fields["holders"] == "30" and int(fields["certificates"]) >= 30


def test_config_error_at_startup(tmp_path, monkeypatch):
    monkeypatch.setenv("JPKI_MOCK_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("JPKI_MOCK_OCSP_NONCE_POLICY", "sometimes")
    r = CliRunner().invoke(main, ["ca", "list"])
    assert r.exit_code == 5
    assert "ocsp.nonce_policy (from environment JPKI_MOCK_OCSP_NONCE_POLICY)" in r.output and "echo" in r.output


def test_not_initialised_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("JPKI_MOCK_DATA", str(tmp_path / "empty"))
    r = CliRunner().invoke(main, ["ca", "list"])
    assert r.exit_code == 5 and "jpki-mock init" in r.output
