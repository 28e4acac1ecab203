"""Shared load-test fixture: one small seeded CA per session."""

from __future__ import annotations

from datetime import datetime

import pytest

from jpki_mock.ca.seed import seed_holders
from jpki_mock.clock import UTC, FixedClock
from tests.support import open_runtime


@pytest.fixture(scope="session")
def seeded(tmp_path_factory):
    """120 seeded holders, plus a certain hold and keyCompromise per kind (the seeder's mix is random)."""
    rt = open_runtime(tmp_path_factory.mktemp("corpus") / "data", FixedClock(datetime.now(UTC)))
    seed_holders(rt, 120, workers=1, rng_seed=7, progress=False)
    for kind in ("auth", "sign"):
        first, second = rt.authority.list_certificates(kind=kind, status="good", limit=2)
        rt.authority.revoke(kind, first.serial, "certificateHold")
        rt.authority.revoke(kind, second.serial, "keyCompromise")
    yield rt
    rt.close()
