"""Kit fixtures: one initialised CA per test module (CA and card keys are slow to generate)."""

from __future__ import annotations

import pytest

from jpki_mock.clock import FixedClock
from jpki_mock.config import load_config
from jpki_mock.runtime import Runtime
from tests.conftest import PASSPHRASE, T0


@pytest.fixture(scope="module")
def kit_rt(tmp_path_factory):
    config = load_config({}, data_dir=tmp_path_factory.mktemp("kit") / "data", key_passphrase=PASSPHRASE)
    runtime = Runtime.open(config, FixedClock(T0))
    runtime.token = runtime.authority.init()
    yield runtime
    runtime.close()
