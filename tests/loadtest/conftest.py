"""Shared load-test fixture: one small seeded CA per session."""

from __future__ import annotations

from datetime import datetime

import pytest

from jpki_mock.ca.seed import seed_holders
from jpki_mock.clock import UTC, FixedClock
from jpki_mock.config import load_config
from jpki_mock.runtime import Runtime


@pytest.fixture(scope="session")
def seeded(tmp_path_factory):
    """120 seeded holders, plus a certain hold and keyCompromise per kind (the seeder's mix is random)."""
    config = load_config({}, data_dir=tmp_path_factory.mktemp("corpus") / "data", key_passphrase="test-passphrase")
    rt = Runtime.open(config, FixedClock(datetime.now(UTC)))
    rt.authority.init()
    seed_holders(rt, 120, workers=1, rng_seed=7, progress=False)
    for kind in ("auth", "sign"):
        first, second = rt.authority.list_certificates(kind=kind, status="good", limit=2)
        rt.authority.revoke(kind, first.serial, "certificateHold")
        rt.authority.revoke(kind, second.serial, "keyCompromise")
    yield rt
    rt.close()
