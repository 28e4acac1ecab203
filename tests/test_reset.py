"""``jpki-mock reset``: start over in a data directory, and only in one.

Run as a user would (the CLI in a subprocess, or click's runner for the terminal prompt); the
data directory is read back from the file system, and the new CA compared with the old one by
its key (openssl)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support import PASSPHRASE, ROOT


def cli(data: Path, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JPKI_MOCK_DATA": str(data), "JPKI_MOCK_KEY_PASSPHRASE": PASSPHRASE, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "jpki_mock.cli", *args], env=env, capture_output=True, text=True,
                          cwd=ROOT, stdin=subprocess.DEVNULL, timeout=120)


def ca_key(data: Path) -> str:
    pem = cli(data, "ca", "show", "--kind", "sign", "--pem").stdout
    return subprocess.run(["openssl", "x509", "-noout", "-pubkey"], input=pem, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def instance(tmp_path):
    data = tmp_path / "var"
    assert cli(data, "init").returncode == 0
    (data / "config.toml").write_text("# my settings\nport = 18080\n")
    assert cli(data, "holder", "add", "--name", "山田　太郎", "--dob", "1980-12-31", "--gender", "1", "--address",
               "東京都千代田区千代田1-1").returncode == 0
    assert cli(data, "crl", "publish").returncode == 0
    return data


def test_reset_removes_what_the_instance_made_and_keeps_the_settings(instance):
    before = ca_key(instance)
    assert {"jpki.db", "admin-token", "crl", "revocation.epoch"} <= {p.name for p in instance.iterdir()}
    done = cli(instance, "reset", "--yes")
    assert done.returncode == 0, done.stderr
    assert "remove jpki.db" in done.stdout and "keep   config.toml" in done.stdout
    assert sorted(p.name for p in instance.iterdir()) == ["config.toml", "server.lock"]
    assert (instance / "config.toml").read_text() == "# my settings\nport = 18080\n"
    assert "not initialised" in cli(instance, "ca", "list").stderr.lower() or cli(instance, "ca", "list").returncode
    assert cli(instance, "init").returncode == 0
    assert ca_key(instance) != before  # a new CA, new key
    assert cli(instance, "holder", "show", "1").returncode == 3  # the holders went with the database


def test_reset_needs_yes_without_a_terminal(instance):
    done = cli(instance, "reset")
    assert done.returncode == 2
    assert "pass --yes" in done.stderr
    assert (instance / "jpki.db").exists() and (instance / "crl").is_dir()


@pytest.mark.parametrize("answer,removed", [("y\n", True), ("n\n", False)])
def test_reset_asks_on_a_terminal(instance, monkeypatch, answer, removed):
    from jpki_mock.ca import cli as ca_cli
    from jpki_mock.cli import main

    monkeypatch.setattr(ca_cli, "stdin_is_terminal", lambda: True)
    result = CliRunner().invoke(main, ["reset"], input=answer,
                                env={"JPKI_MOCK_DATA": str(instance), "JPKI_MOCK_KEY_PASSPHRASE": PASSPHRASE})
    assert "This cannot be undone. Reset?" in result.output
    assert (result.exit_code == 0) is removed, result.output
    assert (instance / "jpki.db").exists() is not removed


def test_reset_refuses_a_directory_it_did_not_make(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    done = cli(home, "reset", "--yes")
    assert done.returncode == 2
    assert "is not a jpki-mock data directory" in done.stderr
    assert (home / "thesis.tex").read_text() == "years of work"


def test_reset_refuses_a_data_directory_with_foreign_files(instance):
    (instance / "notes.txt").write_text("mine")
    done = cli(instance, "reset", "--yes")
    assert done.returncode == 2
    assert "did not create (notes.txt)" in done.stderr
    assert (instance / "jpki.db").exists() and (instance / "notes.txt").exists()


@pytest.mark.server
def test_reset_refuses_while_a_server_runs(server_factory):
    srv = server_factory(workers=1)
    done = srv.cli("reset", "--yes", check=False)
    assert done.returncode == 4, done.stderr
    assert b"a server is running on" in done.stderr and b"stop it first" in done.stderr
    assert (srv.data_dir / "jpki.db").exists()
    srv.stop()
    srv.log.unlink()  # the test harness's log, not the instance's
    done = srv.cli("reset", "--yes", check=False)
    assert done.returncode == 0, done.stderr
    assert not (srv.data_dir / "jpki.db").exists()


@pytest.mark.postgres
def test_reset_drops_the_tables_in_postgresql(tmp_path):
    from sqlalchemy import create_engine, inspect

    from tests.support import fresh_pg_database

    url = fresh_pg_database()
    data = tmp_path / "var"
    pg = {"JPKI_MOCK_DATABASE_URL": url}
    assert cli(data, "init", env_extra=pg).returncode == 0
    engine = create_engine(url)
    try:
        assert "certificates" in inspect(engine).get_table_names() or inspect(engine).get_table_names()
        done = cli(data, "reset", "--yes", env_extra=pg)
        assert done.returncode == 0, done.stderr
        assert "drop   jpki-mock's tables" in done.stdout
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    assert cli(data, "init", env_extra=pg).returncode == 0


def test_reset_of_a_missing_data_directory_does_nothing(tmp_path):
    done = cli(tmp_path / "never-made", "reset", "--yes")
    assert done.returncode == 0, done.stderr
    assert "nothing to reset" in done.stdout
    assert not (tmp_path / "never-made").exists()
