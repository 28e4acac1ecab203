"""A PostgreSQL cluster of a test's own, to stop and start again (an outage): the suite's shared
cluster (tests/run.py) must keep running for every other test.

Built on the cluster functions `make test` uses (jpki_mock.loadtest.bench.pg): the same initdb
options, 127.0.0.1 only, run as the ``postgres`` user when the tests run as root, stopped by
pg_ctl and then by PID.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from jpki_mock.loadtest.bench.pg import as_pg, pg_bin, start_cluster, start_server, stop_cluster


class Cluster:
    """``start_cluster()``'s cluster, with :meth:`stop` (``pg_ctl stop -m fast``) and
    :meth:`start` again on the same port; :meth:`destroy` removes it."""

    def __init__(self) -> None:
        self.url, self.data, self.tmp = start_cluster()
        self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    def stop(self) -> float:
        """Stop the server as an operator would (``-m fast``: sessions are terminated); returns
        the seconds pg_ctl took."""
        t0 = time.monotonic()
        subprocess.run(as_pg([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]), check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
        return time.monotonic() - t0

    def start(self) -> float:
        """Start it again with the options start_cluster gave it; returns the
        seconds until it accepted connections."""
        t0 = time.monotonic()
        start_server(self.data, self.port, Path(self.tmp), timeout=60)
        return time.monotonic() - t0

    def destroy(self) -> None:
        stop_cluster(self.data, self.tmp)
