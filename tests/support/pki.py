"""What every test's PKI shares: the passphrase, the frozen time, a holder, and the one way to
open an initialised runtime (:func:`open_runtime`)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from jpki_mock.clock import UTC, Clock, FixedClock
from jpki_mock.config import load_config
from jpki_mock.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
PASSPHRASE = "test-passphrase"
T0 = datetime(2026, 11, 26, 3, 0, 0, tzinfo=UTC)

HOLDER = {
    "name": "山田\u3000太郎",
    "date_of_birth": "319801231",
    "gender": "1",
    "address": "東京都千代田区千代田1-1",
}


def open_runtime(data_dir: Path, clock: Clock | None = None, *, init: bool = True, **config: Any) -> Runtime:
    """A runtime on ``data_dir`` (SQLite unless ``database_url`` is given) with the test
    passphrase, a clock frozen at :data:`T0` unless given, and both CAs initialised (the admin
    token in ``runtime.token``)."""
    config.setdefault("key_passphrase", PASSPHRASE)
    runtime = Runtime.open(load_config({}, data_dir=data_dir, **config), clock or FixedClock(T0))
    runtime.token = runtime.authority.init() if init else None  # type: ignore[attr-defined]
    return runtime


def pg_url() -> str | None:
    """The throwaway PostgreSQL cluster ``make test`` starts (tests/run.py)."""
    return os.environ.get("JPKI_MOCK_TEST_PG_URL")


def fresh_pg_database() -> str:
    """A new empty database on the throwaway cluster; returns its SQLAlchemy URL."""
    from jpki_mock.loadtest.bench.pg import create_database

    base = pg_url()
    assert base, "JPKI_MOCK_TEST_PG_URL is not set: run the tests with `make test` (tests/run.py starts PostgreSQL)"
    return create_database(base, prefix="t_")
