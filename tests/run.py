#!/usr/bin/env python3
"""`make test`: start a throwaway PostgreSQL cluster, run pytest, stop the cluster.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
The cluster lives in a temporary directory, listens on 127.0.0.1 only, and is stopped (by
pg_ctl, then by PID) whatever pytest does.  Without PostgreSQL binaries the storage tests
that need it fail loudly rather than skip: CI must exercise both databases.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    raise SystemExit(f"PostgreSQL's {name} not found: install postgresql (apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_pg(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def start_cluster() -> tuple[str, Path, str]:
    tmp = Path(tempfile.mkdtemp(prefix="jpki-pg-"))
    data = tmp / "data"
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    os.chmod(tmp, 0o700)
    port = free_port()
    subprocess.run(as_pg([pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                          "--locale=C"]), check=True, stdout=subprocess.DEVNULL)
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(as_pg([pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "log"), "-w", "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", data, str(tmp)


def stop_cluster(data: Path, tmp: str) -> None:
    subprocess.run(as_pg([pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = data / "postmaster.pid"
    if pid_file.exists():  # pg_ctl failed: stop it by PID
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), 15)
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    args = sys.argv[1:]
    env = dict(os.environ)
    data = tmp = None
    if "JPKI_MOCK_TEST_PG_URL" not in env:
        url, data, tmp = start_cluster()
        env["JPKI_MOCK_TEST_PG_URL"] = url
        print(f"throwaway PostgreSQL at {url}", flush=True)
    try:
        cmd = [sys.executable, "-m", "pytest", *args]
        code = subprocess.call(cmd, cwd=ROOT, env=env)
    finally:
        if data is not None:
            stop_cluster(data, tmp)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
