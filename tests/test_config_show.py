"""One effective configuration per data directory (jpki_mock/config.py, docs/configuration.md):
precedence flag > environment > file > default with the source of every value, what
``jpki-mock serve`` records in the file (and what it never records), and ``jpki-mock config show``.

The same with real processes (a server started with PORT, the CLI in another process without
it) is tests/test_service.py."""

from __future__ import annotations

import json
import stat
import tomllib

import pytest
from click.testing import CliRunner

from jpki_mock.cli import main
from jpki_mock.config import record, resolve, to_record, write_settings
from jpki_mock.errors import ConfigError


def test_precedence_flag_env_file_default(tmp_path):
    (tmp_path / "config.toml").write_text("port = 9001\nworkers = 3\n[ocsp]\nnonce_policy = 'ignore'\n")
    env = {"JPKI_MOCK_DATA": str(tmp_path), "PORT": "9002", "JPKI_MOCK_WORKERS": "4"}
    resolved = resolve(env, flags={"workers": ("--workers", 5)})
    file = f"file {tmp_path / 'config.toml'}"
    assert (resolved.config.port, resolved.config.workers, resolved.config.ocsp.nonce_policy) == (9002, 5, "ignore")
    assert resolved.sources["port"] == "env PORT"  # the variable the user set, not its JPKI_MOCK_ alias
    assert resolved.sources["workers"] == "flag --workers"
    assert resolved.sources["ocsp.nonce_policy"] == file
    assert resolved.sources["host"] == "default"
    assert resolved.sources["data_dir"] == "env JPKI_MOCK_DATA"
    assert resolve({**env, "JPKI_MOCK_PORT": "9003"}).sources["port"] == "env JPKI_MOCK_PORT"
    # without the environment the file decides, without the file the default
    assert resolve({"JPKI_MOCK_DATA": str(tmp_path)}).config.port == 9001
    assert resolve({"JPKI_MOCK_DATA": str(tmp_path / "none")}).config.port == 8080


def test_a_bad_flag_names_the_flag(tmp_path):
    with pytest.raises(ConfigError) as err:
        resolve({"JPKI_MOCK_DATA": str(tmp_path)}, flags={"port": ("--port", 70000)})
    assert str(err.value) == "port (from flag --port): 70000 is not a TCP port"


def test_serve_records_flags_and_environment_but_not_the_passphrase(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("# my notes\nkey_passphrase = 'from-init'\nhierarchy = 'production'\n\n[crl]\n# daily\n"
                    "period_seconds = 86400\n")
    env = {"JPKI_MOCK_DATA": str(tmp_path), "PORT": "18080", "JPKI_MOCK_TIME_TRAVEL": "1",
           "JPKI_MOCK_OCSP_ACCESS_CONTROL": "yes", "JPKI_MOCK_KEY_PASSPHRASE": "from-env",
           "JPKI_MOCK_CRL_PERIOD_SECONDS": "86400"}
    resolved = resolve(env, flags={"base_url": ("--base-url", "http://ca.test:18080")})
    changes = record(resolved)
    # the passphrase from the environment stays out of the file; a value the file already has is no change
    assert changes == {"port": 18080, "base_url": "http://ca.test:18080", "time_travel": True,
                       "ocsp.access_control": True}
    text = path.read_text()
    assert "# my notes" in text and "# daily" in text  # the user's comments are kept
    assert tomllib.loads(text) == {"key_passphrase": "from-init", "hierarchy": "production", "port": 18080,
                                   "base_url": "http://ca.test:18080", "time_travel": True,
                                   "crl": {"period_seconds": 86400}, "ocsp": {"access_control": True}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a process with no environment now resolves what the server was started with
    later = resolve({"JPKI_MOCK_DATA": str(tmp_path)})
    assert later.config.public_url == "http://ca.test:18080"
    assert later.config.time_travel and later.config.ocsp.access_control
    assert later.sources["time_travel"] == f"file {path}"
    assert to_record(resolve(env, flags={"base_url": ("--base-url", "http://ca.test:18080")})) == {}


def test_record_creates_a_private_file_and_init_adds_its_passphrase(tmp_path):
    data = tmp_path / "data"
    record(resolve({"JPKI_MOCK_DATA": str(data), "PORT": "18081"}))
    path = data / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    result = CliRunner().invoke(main, ["init"], env={"JPKI_MOCK_DATA": str(data)})
    assert result.exit_code == 0, result.output
    values = tomllib.loads(path.read_text())
    assert values["port"] == 18081 and len(values["key_passphrase"]) >= 24
    # the passphrase init wrote opens the CA it created
    shown = CliRunner().invoke(main, ["ca", "list"], env={"JPKI_MOCK_DATA": str(data)})
    assert shown.exit_code == 0 and "sign-g1" in shown.output


def test_write_settings_falls_back_to_a_plain_file_it_can_read(tmp_path):
    """A key written over several lines is beyond the line editor: the file is rewritten
    plainly rather than left wrong."""
    path = tmp_path / "config.toml"
    path.write_text('base_url = """\nhttp://x.test"""\n')
    write_settings(path, {"base_url": "http://y.test", "ocsp.port": 9999})
    assert tomllib.loads(path.read_text()) == {"base_url": "http://y.test", "ocsp": {"port": 9999}}


def test_config_show_text_and_json(tmp_path):
    (tmp_path / "config.toml").write_text("key_passphrase = 'secret-value'\ntime_travel = true\n")
    env = {"JPKI_MOCK_DATA": str(tmp_path), "PORT": "18082",
           "JPKI_MOCK_DATABASE_URL": "postgresql+psycopg://jpki:pw123@db.test/jpki"}
    result = CliRunner().invoke(main, ["config", "show", "--json"], env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["port"] == {"value": 18082, "source": "env PORT"}
    assert shown["time_travel"] == {"value": True, "source": f"file {tmp_path / 'config.toml'}"}
    assert shown["ocsp.nonce_policy"] == {"value": "echo", "source": "default"}
    assert shown["data_dir"]["source"] == "env JPKI_MOCK_DATA"
    assert shown["public_url"]["value"] == "http://127.0.0.1:18082"
    # secrets are never printed
    assert shown["key_passphrase"]["value"] == "(set)"
    assert shown["database_url"]["value"] == "postgresql+psycopg://jpki:***@db.test/jpki"
    assert "secret-value" not in result.output and "pw123" not in result.output
    text = CliRunner().invoke(main, ["config", "show"], env=env).output
    lines = text.splitlines()
    assert lines[0].split() == ["setting", "value", "source"]
    port = next(line for line in lines if line.startswith("port "))
    assert port.split() == ["port", "18082", "env", "PORT"]
    assert any(line.startswith("ocsp.port ") and line.split()[1:] == ["8081", "default"] for line in lines)
    assert "secret-value" not in text
