"""Secrets are private from the moment they exist: the data directory 0700; the database, its
WAL and shared-memory files, the key-passphrase file, the admin token and every PKCS#12 file
0600 -- under the permissive umask most shells have."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from jpki_mock.private import ensure_private_file, private_dir, write_private
from tests.support import HOLDER, PASSPHRASE, ROOT


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_write_private_is_0600_and_leaves_no_temporary(tmp_path, open_umask):
    path = write_private(tmp_path / "token", "secret\n")
    assert mode(path) == 0o600 and path.read_text() == "secret\n"
    write_private(path, b"again")
    assert mode(path) == 0o600 and path.read_bytes() == b"again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]


def test_private_dir_and_file_tighten_what_exists(tmp_path, open_umask):
    loose = tmp_path / "data"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    assert mode(private_dir(loose)) == 0o700
    db = loose / "x.db"
    db.write_bytes(b"")
    (loose / "x.db-wal").write_bytes(b"")
    os.chmod(db, 0o644)
    ensure_private_file(db)
    assert mode(db) == 0o600 and mode(loose / "x.db-wal") == 0o600


def test_cli_init_issue_and_export_leave_only_private_secrets(tmp_path, open_umask):
    data, out = tmp_path / "data", tmp_path / "out"
    env = {**os.environ, "JPKI_MOCK_DATA": str(data)}
    env.pop("JPKI_MOCK_KEY_PASSPHRASE", None)  # init writes config.toml with a generated passphrase

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "jpki_mock.cli", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("init")
    cli("holder", "add", "--name", HOLDER["name"], "--dob", HOLDER["date_of_birth"], "--gender", HOLDER["gender"],
        "--address", HOLDER["address"])
    cli("holder", "add", "--name", "佐藤\u3000花子", "--dob", "1985-05-05", "--gender", "2",
        "--address", HOLDER["address"])
    cli("cert", "issue", "--holder", "1", "--p12-passphrase", "pw1234", "--out", str(out))
    cli("card", "create", "2", "--sign-password", "ABC123", "--auth-pin", "1234")
    cli("card", "export", "2", "--kind", "auth", "--pin", "1234", "--p12-passphrase", "pw5678",
        "--out", str(out / "card-auth.p12"))
    assert mode(data) == 0o700
    for name in ("jpki.db", "config.toml", "admin-token"):
        assert mode(data / name) == 0o600, name
    p12s = sorted(out.glob("*.p12"))
    assert len(p12s) == 3 and all(mode(p) == 0o600 for p in p12s), [(p.name, oct(mode(p))) for p in p12s]
    assert all(mode(p) == 0o644 for p in out.glob("*.pem"))  # certificates are public


def test_sqlite_wal_and_shm_are_created_private(tmp_path, open_umask, rt_factory):
    rt = rt_factory(tmp_path / "d", key_passphrase=PASSPHRASE)
    rt.authority.create_holder(HOLDER)  # a write: SQLite (WAL mode) creates -wal and -shm
    db = Path(rt.config.data_dir) / "jpki.db"
    sides = [db.with_name(db.name + s) for s in ("-wal", "-shm")]
    assert all(p.exists() for p in sides)
    assert [mode(p) for p in (db, *sides)] == [0o600, 0o600, 0o600]
