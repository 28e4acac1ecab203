"""Configuration: typed values from file and environment, specific start-up errors."""

import pytest

from jpki_mock.config import load_config
from jpki_mock.errors import ConfigError


def test_defaults_and_environment_overrides(tmp_path):
    cfg = load_config({"JPKI_MOCK_DATA": str(tmp_path), "PORT": "9000", "JPKI_MOCK_OCSP_MAX_CERTIDS": "5",
                       "JPKI_MOCK_CRL_DELTA": "yes", "JPKI_MOCK_FAITHFUL": "1"})
    assert cfg.port == 9000 and cfg.ocsp.max_certids == 5 and cfg.crl.delta is True and cfg.faithful is True
    assert cfg.public_url == "http://127.0.0.1:9000"
    assert cfg.db_url == f"sqlite:///{(tmp_path / 'jpki.db').resolve()}"


def test_file_then_environment(tmp_path):
    (tmp_path / "config.toml").write_text('port = 8100\nhierarchy = "test"\n[ocsp]\nnonce_policy = "require"\n')
    cfg = load_config({"JPKI_MOCK_DATA": str(tmp_path), "JPKI_MOCK_PORT": "8200"})
    assert cfg.port == 8200 and cfg.hierarchy == "test" and cfg.ocsp.nonce_policy == "require"


@pytest.mark.parametrize("env, field, fragment", [
    ({"PORT": "eighty"}, "port", "not a whole number"),
    ({"PORT": "70000"}, "port", "not a TCP port"),
    ({"JPKI_MOCK_WORKERS": "0"}, "workers", "greater than 0"),
    ({"JPKI_MOCK_HIERARCHY": "staging"}, "hierarchy", "not allowed"),
    ({"JPKI_MOCK_FAITHFUL": "maybe"}, "faithful", "not a boolean"),
    ({"JPKI_MOCK_OCSP_BACKDATE_SECONDS": "-1"}, "ocsp.backdate_seconds", "must not be negative"),
    ({"JPKI_MOCK_TIME_TRAVEL": "1", "JPKI_MOCK_SHARED": "1"}, "time_travel", "shared use"),
    ({"JPKI_MOCK_OCSP_REFRESH_SECONDS": "99999"}, "ocsp.refresh_seconds", "refreshed before it expires"),
    ({"JPKI_MOCK_BASE_URL": "ftp://x"}, "base_url", "not an http(s) URL"),
    ({"JPKI_MOCK_DATABASE_URL": "mysql://x"}, "database_url", "not supported"),
])
def test_bad_values_name_the_field(tmp_path, env, field, fragment):
    with pytest.raises(ConfigError) as err:
        load_config({"JPKI_MOCK_DATA": str(tmp_path), **env})
    assert err.value.field.startswith(field) and fragment in str(err.value)


def test_unknown_key_in_file_is_refused(tmp_path):
    (tmp_path / "config.toml").write_text('[ocsp]\nnonce = "echo"\n')
    with pytest.raises(ConfigError) as err:
        load_config({"JPKI_MOCK_DATA": str(tmp_path)})
    assert err.value.field == "ocsp.nonce" and "nonce_policy" in err.value.allowed


def test_unparsable_file(tmp_path):
    (tmp_path / "config.toml").write_text("port = = 3")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config({"JPKI_MOCK_DATA": str(tmp_path)})


def test_wrong_passphrase_is_a_clear_error_without_the_secret(rt):
    from jpki_mock.runtime import Runtime

    other = Runtime.open(rt.config.replace(key_passphrase="not-the-one"), rt.clock)
    with pytest.raises(ConfigError) as err:
        other.keyring.ca_signer(rt.authority.issuer("sign").id)
    assert "does not decrypt" in str(err.value) and "not-the-one" not in str(err.value)
    other.close()


@pytest.mark.parametrize("env, threads", [
    ({}, 1),  # epoch revocation check: CPU-bound answers, one thread per worker
    ({"JPKI_MOCK_OCSP_REVOCATION_CHECK": "database"}, 8),  # every request waits for the database
    ({"JPKI_MOCK_OCSP_THREADS": "4"}, 4),
    ({"JPKI_MOCK_OCSP_THREADS": "3", "JPKI_MOCK_OCSP_REVOCATION_CHECK": "database"}, 3),
])
def test_responder_threads_follow_the_revocation_check_unless_set(tmp_path, env, threads):
    assert load_config(env, data_dir=tmp_path).ocsp.serve_threads == threads


def test_negative_threads_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="must not be negative") as err:
        load_config({"JPKI_MOCK_OCSP_THREADS": "-1"}, data_dir=tmp_path)
    assert "ocsp.threads" in str(err.value.field)
