#!/usr/bin/env python3
"""`make test`: start a throwaway PostgreSQL cluster, run pytest, stop the cluster.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
(jpki_mock.loadtest.bench.pg).  The cluster lives in a temporary directory, listens on
127.0.0.1 only, and is stopped (by pg_ctl, then by PID) whatever pytest does.  Without
PostgreSQL binaries the storage tests that need it fail loudly rather than skip: CI must
exercise both databases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The cluster's start and stop live with the benchmarks that need PostgreSQL too.
from jpki_mock.loadtest.bench.pg import start_cluster, stop_cluster

ROOT = Path(__file__).resolve().parent.parent


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
