"""Shared fixtures: a frozen clock, an initialised CA on SQLite or PostgreSQL, a running server.

Every runtime a test uses is opened by :func:`tests.support.open_runtime`, through the
``rt_factory`` fixture here or, for module- and session-scoped fixtures, directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jpki_mock.clock import FixedClock
from jpki_mock.config import Config, load_config
from jpki_mock.runtime import Runtime
from tests.support import PASSPHRASE, T0, Server, fresh_pg_database, open_runtime

RuntimeFactory = Callable[..., Runtime]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def rt_factory(tmp_path: Path, clock: FixedClock) -> Iterator[RuntimeFactory]:
    """``rt_factory(data_dir=None, clock=None, init=True, **config)``: initialised runtimes,
    closed after the test; the test's frozen clock unless another is given."""
    opened: list[Runtime] = []

    def make(data_dir: Path | None = None, clock_: Any = None, *, init: bool = True, **config: Any) -> Runtime:
        runtime = open_runtime(data_dir or tmp_path / f"data{len(opened) or ''}", clock_ or clock, init=init, **config)
        opened.append(runtime)
        return runtime

    yield make
    for runtime in opened:
        runtime.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config({}, data_dir=tmp_path / "data", key_passphrase=PASSPHRASE)


@pytest.fixture
def rt(rt_factory: RuntimeFactory, config: Config) -> Runtime:
    return rt_factory(config.data_dir)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    """The same configuration on SQLite and on PostgreSQL: storage tests run on both."""
    url = "" if request.param == "sqlite" else fresh_pg_database()
    return load_config({}, data_dir=tmp_path / "data", key_passphrase=PASSPHRASE, database_url=url)


@pytest.fixture
def db_rt(rt_factory: RuntimeFactory, db_config: Config) -> Runtime:
    return rt_factory(db_config.data_dir, database_url=db_config.database_url)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(env_extra=None, workers=2, init=True, args=None) -> Server:
        srv = Server(tmp_path / f"srv{len(started)}", env_extra, workers, args)
        srv.token = srv.init() if init else None
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def server(server_factory) -> Server:
    return server_factory()
