"""Shared fixtures: configuration, frozen clock, an initialised CA, databases, a running server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from jpki_mock.clock import UTC, FixedClock
from jpki_mock.config import load_config
from jpki_mock.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
VECTORS = Path(__file__).resolve().parent / "vectors"
PASSPHRASE = "test-passphrase"
T0 = datetime(2026, 11, 26, 3, 0, 0, tzinfo=UTC)

HOLDER = {
    "name": "山田\u3000太郎",
    "date_of_birth": "319801231",
    "gender": "1",
    "address": "東京都千代田区千代田1-1",
}


def pg_url() -> str | None:
    return os.environ.get("JPKI_MOCK_TEST_PG_URL")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def config(tmp_path):
    return load_config({}, data_dir=tmp_path / "data", key_passphrase=PASSPHRASE)


@pytest.fixture
def rt(config, clock):
    runtime = Runtime.open(config, clock)
    runtime.token = runtime.authority.init()
    yield runtime
    runtime.close()


def fresh_pg_database() -> str:
    """A new empty database on the throwaway cluster; returns its SQLAlchemy URL."""
    import psycopg

    base = pg_url()
    assert base, "JPKI_MOCK_TEST_PG_URL is not set: run the tests with `make test` (tests/run.py starts PostgreSQL)"
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_config(request, tmp_path):
    """The same configuration on SQLite and on PostgreSQL: storage tests run on both."""
    url = "" if request.param == "sqlite" else fresh_pg_database()
    return load_config({}, data_dir=tmp_path / "data", key_passphrase=PASSPHRASE, database_url=url)


@pytest.fixture
def db_rt(db_config, clock):
    runtime = Runtime.open(db_config, clock)
    runtime.token = runtime.authority.init()
    yield runtime
    runtime.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real `jpki-mock serve` process on 127.0.0.1, stopped by its PID."""

    def __init__(self, data_dir: Path, env_extra: dict[str, str] | None = None, workers: int = 2,
                 args: list[str] | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {**os.environ, "JPKI_MOCK_DATA": str(data_dir), "PORT": str(self.port),
                    "JPKI_MOCK_KEY_PASSPHRASE": PASSPHRASE, **(env_extra or {})}
        self.workers = workers
        self.args = args or ["serve"]
        self.proc: subprocess.Popen | None = None
        self.log = data_dir / f"server-{self.port}.log"

    def cli(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "jpki_mock.cli", *args], env=self.env, capture_output=True,
                              check=check, input=input, cwd=ROOT)

    def init(self) -> str:
        out = self.cli("init").stdout.decode()
        return out.strip().splitlines()[-1]

    def start(self) -> "Server":
        import requests

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "jpki_mock.cli", *self.args, "--workers", str(self.workers)],
                                         env=self.env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if requests.get(self.base + "/", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def server_factory(tmp_path):
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
