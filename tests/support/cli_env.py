"""The environment that makes ``jpki-mock`` (load_config) open a test runtime's data directory."""

from __future__ import annotations


def env_for(config) -> dict[str, str]:
    return {"JPKI_MOCK_DATA": str(config.data_dir), "JPKI_MOCK_KEY_PASSPHRASE": config.key_passphrase}
