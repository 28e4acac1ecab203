"""A throwaway PostgreSQL cluster on 127.0.0.1: what ``make test`` (tests/run.py) and the
benchmarks that need PostgreSQL (``make bench-propagation``) start and stop.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
The cluster lives in a temporary directory, listens on 127.0.0.1 only (and a Unix socket in
that directory), and :func:`stop_cluster` stops it (by pg_ctl, then by PID) and removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from jpki_mock.db import libpq_url
from jpki_mock.loadtest.procs import free_port

__all__ = ["as_pg", "create_database", "drop_database", "free_port", "pg_bin", "start_cluster", "start_server",
           "stop_cluster"]


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    raise SystemExit(f"PostgreSQL's {name} not found: install postgresql (apt-get install postgresql)")


def as_pg(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def start_cluster() -> tuple[str, Path, str]:
    """Start a cluster; returns its SQLAlchemy URL (database ``postgres``), its data directory
    and the temporary directory to give :func:`stop_cluster`."""
    tmp = Path(tempfile.mkdtemp(prefix="jpki-pg-"))
    data = tmp / "data"
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    os.chmod(tmp, 0o700)
    port = free_port()
    subprocess.run(as_pg([pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                          "--locale=C"]), check=True, stdout=subprocess.DEVNULL)
    start_server(data, port, tmp)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", data, str(tmp)


def start_server(data: Path, port: int, tmp: Path, timeout: float | None = None) -> None:
    """``pg_ctl start`` the cluster in ``data`` on 127.0.0.1:``port`` (socket and log in ``tmp``);
    returns once it accepts connections.  Also how a test restarts a stopped cluster."""
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(as_pg([pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "log"), "-w", "start"]),
                   check=True, stdout=subprocess.DEVNULL, timeout=timeout)


def stop_cluster(data: Path, tmp: str) -> None:
    subprocess.run(as_pg([pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = data / "postmaster.pid"
    if pid_file.exists():  # pg_ctl failed: stop it by PID
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), 15)
    shutil.rmtree(tmp, ignore_errors=True)


def create_database(url: str, prefix: str = "t_") -> str:
    """A new empty database on the cluster at ``url``; returns its SQLAlchemy URL."""
    import psycopg

    name = prefix + uuid.uuid4().hex[:12]
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """Drop the database at ``url`` (made by :func:`create_database`), on its cluster."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(libpq_url(f"{base}/postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
