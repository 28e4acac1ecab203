"""Seeding benchmark: `jpki-mock seed --holders N` three times in fresh data directories.

    python -m jpki_mock.loadtest.bench.seed [--holders 100000] [--runs 3] [--lazy] [--postgres] [--settle-seconds 30]

``--lazy`` seeds certificate records without signing them (``jpki-mock seed --lazy``, national
scale: docs/loadtest.md "National scale").  ``--postgres`` seeds into a throwaway PostgreSQL
cluster on 127.0.0.1 (a new database each run, dropped after it; the cluster is stopped and
removed at the end) instead of the data directory's SQLite file.  Before each run the machine's
dirty pages are flushed and the run waits (up to ``--settle-seconds``) for idle cores.

Beside each run it measures the machine's single-thread RSA-2048 signing rate (the floor of
any certificate's cost), so a figure taken on a busy shared machine can be read as a ratio.
Prints each run's summary line and, last, the medians:
``seed_holders=<n> runs=<k> certs_per_s_median=<x> seconds_median=<x> rsa_sign_per_s_median=<x> certs_per_sign=<x>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from jpki_mock.loadtest.bench.pg import create_database, drop_database, start_cluster, stop_cluster
from jpki_mock.loadtest.procs import run_jpki


def rsa_sign_rate(seconds: float = 2.0) -> float:
    """Single-thread RSA-2048 PKCS#1 v1.5 SHA-256 signatures per second, measured now."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data, count, start = b"x" * 1500, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        count += 1
    return count / (time.perf_counter() - start)


def cpu_idle(seconds: float = 1.0) -> float:
    """The share of the machine's CPU time that was idle over the next ``seconds`` (/proc/stat)."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def settle(idle: float = 0.9, limit: float = 30.0) -> None:
    """Before seeding: flush what earlier work left to write and wait (up to ``limit`` s) for the
    machine to be idle.  Seeding a second store right after a run had it 10 to 20 % slower than
    seeding it after a pause (the kernel still freeing and writing back the last run's gigabytes)."""
    os.sync()
    deadline = time.monotonic() + limit
    while cpu_idle() < idle and time.monotonic() < deadline:
        pass


def run_once(holders: int, workers: int | None, lazy: bool = False, database_url: str | None = None
             ) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="jpki-seed-") as data:
        env = {**os.environ, "JPKI_MOCK_DATA": data, "JPKI_MOCK_KEY_PASSPHRASE": "bench-passphrase"}
        if database_url:
            env["JPKI_MOCK_DATABASE_URL"] = database_url
        run_jpki(env, "init")
        args = ["seed", "--holders", str(holders), "--seed", "1", *(["--lazy"] if lazy else [])]
        if workers:
            args += ["--workers", str(workers)]
        out = run_jpki(env, *args).stdout
    line = out.strip().splitlines()[-1]
    print(line, flush=True)
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--lazy", action="store_true", help="records only, each signed on first use")
    parser.add_argument("--postgres", action="store_true", help="into a throwaway PostgreSQL cluster")
    parser.add_argument("--settle-seconds", type=float, default=30.0,
                        help="before each run, wait up to this long for an idle machine")
    args = parser.parse_args(argv)
    results, signs = [], []
    cluster = start_cluster() if args.postgres else None
    try:
        for _ in range(args.runs):
            signs.append(rsa_sign_rate())
            url = create_database(cluster[0], "seed_") if cluster else None
            settle(limit=args.settle_seconds)
            results.append(run_once(args.holders, args.workers, args.lazy, url))
            print(f"rsa_sign_per_s={signs[-1]:.0f}", flush=True)
            if url:
                drop_database(url)  # the next run's starts as empty as this one's did
    finally:
        if cluster:
            stop_cluster(cluster[1], cluster[2])
    rate = statistics.median(r["certs_per_s"] for r in results)
    secs = statistics.median(r["seconds"] for r in results)
    sign = statistics.median(signs)
    print(f"store={'postgresql' if args.postgres else 'sqlite'} "
          f"seed_holders={args.holders} runs={args.runs} certs_per_s_median={rate:.1f} seconds_median={secs:.2f} "
          f"rsa_sign_per_s_median={sign:.0f} certs_per_sign={rate / sign:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
