"""A real ``jpki-mock serve`` process on 127.0.0.1 for the tests, stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jpki_mock.loadtest.procs import free_port
from tests.support.pki import PASSPHRASE, ROOT

__all__ = ["Server", "free_port"]


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

    def start(self) -> Server:
        import requests

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as fh:
            command = [sys.executable, "-m", "jpki_mock.cli", *self.args, "--workers", str(self.workers)]
            self.proc = subprocess.Popen(command,
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
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
