"""Kit fixtures: one initialised CA per test module (CA and card keys are slow to generate)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jpki_mock.runtime import Runtime
from tests.support import open_runtime


@pytest.fixture(scope="module")
def kit_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = open_runtime(tmp_path_factory.mktemp("kit") / "data")
    yield runtime
    runtime.close()
