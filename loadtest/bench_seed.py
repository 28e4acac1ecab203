"""Seeding benchmark: `jpki-mock seed --holders N` three times in fresh data directories.

    python -m loadtest.bench_seed [--holders 100000] [--runs 3]

Prints each run's summary line and, last, the medians:
``seed_holders=<n> runs=<k> certs_per_s_median=<x> seconds_median=<x>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile


def run_once(holders: int, workers: int | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="jpki-seed-") as data:
        env = {**os.environ, "JPKI_MOCK_DATA": data, "JPKI_MOCK_KEY_PASSPHRASE": "bench-passphrase"}
        cli = [sys.executable, "-m", "ca.cli"]
        subprocess.run(cli + ["init"], env=env, check=True, stdout=subprocess.DEVNULL)
        args = cli + ["seed", "--holders", str(holders), "--seed", "1"]
        if workers:
            args += ["--workers", str(workers)]
        out = subprocess.run(args, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    line = out.strip().splitlines()[-1]
    print(line, flush=True)
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    results = [run_once(args.holders, args.workers) for _ in range(args.runs)]
    rate = statistics.median(r["certs_per_s"] for r in results)
    secs = statistics.median(r["seconds"] for r in results)
    print(f"seed_holders={args.holders} runs={args.runs} certs_per_s_median={rate:.1f} seconds_median={secs:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
