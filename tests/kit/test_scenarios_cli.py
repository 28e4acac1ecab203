"""``jpki-mock scenarios build`` never changes the user's CA silently: by default it builds into
a data directory of its own (``<data>/scenarios``), with its own CA and port, which
``jpki-mock serve`` then serves; ``--into-my-ca`` first says what it will change and asks.

Checked as a user would: the CLI in subprocesses, ``openssl verify`` of a certificate issued
before the build against ``ca show --pem`` after it, ``openssl ocsp`` against the catalog's own
server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PASSPHRASE, ROOT, Server

pytestmark = [pytest.mark.server, pytest.mark.slow]


def jpki(data: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JPKI_MOCK_DATA": str(data), "JPKI_MOCK_KEY_PASSPHRASE": PASSPHRASE}
    return subprocess.run([sys.executable, "-m", "jpki_mock.cli", *args], env=env, capture_output=True, text=True,
                          cwd=cwd, stdin=subprocess.DEVNULL, timeout=300)


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def user(tmp_path):
    """A user's instance after the README tour's first steps: a holder with both certificates."""
    data, work = tmp_path / "var", tmp_path / "work"
    work.mkdir()
    assert jpki(data, "init").returncode == 0
    assert jpki(data, "holder", "add", "--name", "山田　太郎", "--dob", "1980-12-31", "--gender", "1", "--address",
                "東京都千代田区千代田1-1").returncode == 0
    done = jpki(data, "cert", "issue", "--holder", "1", "--p12-passphrase", "secret123", "--out", "cards/", cwd=work)
    assert done.returncode == 0, done.stderr
    return data, work


def test_build_leaves_the_users_ca_alone_and_the_catalog_serves_itself(user):
    data, work = user
    ca_before = jpki(data, "ca", "list").stdout
    pems_before = {k: jpki(data, "ca", "show", "--kind", k, "--pem").stdout for k in ("sign", "auth")}
    catalog_dir = data / "scenarios"
    srv = Server(catalog_dir, workers=1)  # its port goes into the catalog's certificates
    done = jpki(data, "scenarios", "build", "--out", str(work / "catalog"), "--port", str(srv.port), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"your CA in {data} is unchanged" in done.stdout
    assert f"JPKI_MOCK_DATA={catalog_dir} PORT={srv.port} jpki-mock serve" in done.stdout

    # The user's CA: same generations, same current certificates; the tour's certificates verify.
    assert jpki(data, "ca", "list").stdout == ca_before
    for kind, pem in pems_before.items():
        assert jpki(data, "ca", "show", "--kind", kind, "--pem").stdout == pem
        (work / f"{kind}-ca.pem").write_text(pem)
        res = openssl("verify", "-CAfile", f"{kind}-ca.pem", f"cards/{kind}-1000001.pem", cwd=work)
        assert res.stdout.strip() == f"cards/{kind}-1000001.pem: OK", res.stdout + res.stderr
    holders = [ln for ln in jpki(data, "holder", "list").stdout.splitlines() if ln.strip()]
    assert len(holders) == 1  # no catalog holders in the user's store

    # The catalog's own CA: rolled over to generation 2 there, its URLs on its own port.
    manifest = json.loads((work / "catalog" / "manifest.json").read_text())
    assert sorted(i["issuer"] for i in manifest["issuers"]) == ["auth-g1", "auth-g2", "sign-g1", "sign-g2"]
    assert manifest["ocsp_url"] == f"http://127.0.0.1:{srv.port}/ocsp"
    assert "sign-g2" in jpki(catalog_dir, "ca", "list").stdout
    catalog_holders = [ln for ln in jpki(catalog_dir, "holder", "list").stdout.splitlines() if ln.strip()]
    assert len(catalog_holders) == 15  # what --into-my-ca announces (below)
    assert (catalog_dir / "config.toml").stat().st_mode & 0o777 == 0o600

    # Served as printed: OCSP answers for the catalog's certificates.
    srv.start()
    try:
        cat = work / "catalog"
        for name, want in (("valid-sign", "good"), ("revoked-sign-keyCompromise", "revoked")):
            item = next(i for i in manifest["items"] if i["name"] == name)
            res = openssl("ocsp", "-issuer", item["files"]["issuer_pem"], "-cert", item["files"]["pem"],
                          "-url", manifest["ocsp_url"], "-CAfile", manifest["trust_pem"], cwd=cat)
            assert f"{item['files']['pem']}: {want}" in res.stdout, res.stdout + res.stderr
            assert "Response verify OK" in res.stderr + res.stdout
    finally:
        srv.stop()


def test_into_my_ca_says_what_it_will_change_and_needs_yes(user):
    data, work = user
    ca_before = jpki(data, "ca", "list").stdout
    done = jpki(data, "scenarios", "build", "--out", str(work / "catalog"), "--into-my-ca", "--no-progress")
    assert done.returncode == 2
    assert "pass --yes" in done.stderr
    assert "add 15 holders" in done.stdout
    assert "roll the sign CA over from sign-g1 to sign-g2" in done.stdout
    assert "roll the auth CA over from auth-g1 to auth-g2" in done.stdout
    assert jpki(data, "ca", "list").stdout == ca_before
    assert not (work / "catalog").exists() and not (data / "scenarios").exists()
