"""Scale benchmark: the OCSP responder over a small and a national-scale population.

``make bench-scale`` (``python -m jpki_mock.loadtest.bench.scale [--small 10000] [--large 10000000]``):

1. for each size, in a temporary data directory, ``jpki-mock init`` and ``jpki-mock seed --lazy``
   (certificate records, none signed: docs/loadtest.md "National scale") until the store holds
   about that many certificate records;
2. ``--rounds`` rounds (default 3), each starting fresh ``jpki-mock ocsp serve`` processes for both
   stores (127.0.0.1, ports 18092 and 18093, ``--workers`` each) and measuring with wrk
   (``bench/wrk.py``, every answer checked by ``wrk_scripts/ocsp.lua``), the two stores one after
   the other and in alternating order, so that a slow minute of this shared machine falls on
   both sides of a ratio:
   * cached GET: a fixed set of ``--hot`` serials, warmed by an unmeasured run, then measured;
   * cold GET: serials of both kinds never asked of these processes, one wrk thread walking a
     shuffled list longer than the run can reach, so every request is a first lookup (status
     read, answer signed);
   each figure is the median of the rounds;
3. for each store, fresh processes again: their RSS once warm (the base), then a run over
   ``--rss-serials`` distinct serials (1,000,000; stopped early at ``--rss-seconds``), in wrk
   runs of at most :data:`RSS_SLICE_SECONDS`, after which the resident set of each worker
   (``/proc/<pid>/status`` VmRSS), its evictions and what its budget charged per answer
   (``/metrics``) are read; and bytes per answer measured by tracemalloc in this process over
   ``--measure-answers`` answers from the same store (``answer_bytes.py``).  The bound it is
   held to is the budget plus the fixed part: the warm base and two caches of fixed size that
   fill after it, the CertID parse cache and SQLite's page cache (:func:`page_cache_mb`);
4. the responders are stopped by their PIDs and the directories removed.

Prints one table and, last, ``small= large= cached_ratio= cold_ratio= cached_p99_ratio=
cold_p99_ratio= rss_mb_per_worker= bytes_per_answer= seed_records_per_s=`` (ratios large/small;
RSS, bytes per answer and the seeding rate from the large run).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from jpki_mock.loadtest import ocsp_requests as oreq
from jpki_mock.loadtest.bench import answer_bytes
from jpki_mock.loadtest.bench.ocsp import HOST, Server, bench_lock, fetch, http, jpki, write_lines
from jpki_mock.loadtest.bench.seed import settle
from jpki_mock.loadtest.bench.wrk import WrkResult, run_wrk, wrk_binary
from jpki_mock.ocsp.request import MAX_CACHED_CERT_IDS

PORT = 18092
#: what an entry of the responder's CertID parse cache costs (ocsp/request.py, measured there)
CERT_ID_BYTES = 525
#: the CertID parse cache once full, in MB (bounded at MAX_CACHED_CERT_IDS entries)
PARSE_CACHE_MB = MAX_CACHED_CERT_IDS * CERT_ID_BYTES / 2**20
#: wrk lines written per second of the RSS run: above any cold rate seen on this machine
RSS_LINES_PER_S = 5_000
#: the longest wrk run of the RSS run, and the serials it is given a second: each walks the
#: serials not asked yet from the first and is given more than it can reach at a cold rate
#: (about 2,100/s here), so that every request is a first lookup (wrk would go round its file
#: again; on a faster machine the repeats are cache hits, not counted).  Longer runs and fewer
#: lines: every wrk run spends a moment reading its file, and a million serials at 20 s and
#: 5,000 lines a second fell short of the cap (979,111 in 540 s).
RSS_SLICE_SECONDS = 40
RSS_SLICE_LINES_PER_S = 3_000
#: certificate records per seeded holder (adults hold two: ca/seed.py MIX and the age spread)
RECORDS_PER_HOLDER = 1.83


@dataclass
class SizeResult:
    records: int
    seed_rate: float
    cached: WrkResult
    cold: WrkResult
    rss_mb: list[float]
    rss_serials: int
    bytes_per_answer: float
    #: each worker's RSS once started and warm, before the RSS run
    base_mb: list[float]
    #: answers the answering worker's cache evicted during the RSS run (budget reached)
    evictions: float
    #: what the budget charged per answer in the server (/metrics), an upper bound of bytes_per_answer
    charged_per_answer: float
    #: SQLite's page cache a worker holds once full (:func:`page_cache_mb`)
    page_cache_mb: float

    def rss_bound(self, cache_mb: int) -> float:
        """What a worker's RSS is held to: the budget, and the fixed part: the warm base and the
        caches of fixed size that fill after it (CertID parses, SQLite's pages)."""
        return cache_mb + max(self.base_mb) + PARSE_CACHE_MB + self.page_cache_mb


def workers_of(pid: int) -> list[int]:
    """The PIDs of ``pid``'s child processes (granian's workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def rss_mb(pid: int) -> float:
    m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


def page_cache_mb(env: dict) -> float:
    """SQLite's page cache in one responder worker once full: a store connection's ``PRAGMA
    cache_size`` (jpki_mock.db leaves SQLite's default, 2,000 KiB, page headers included) times
    the connections a worker holds, one a request thread (``ocsp.serve_threads``).  It fills with
    B-tree pages as first lookups walk the store, after the warm base was measured: over 230,000
    first lookups on the 10 M-record store, workers with a 64 KiB cache stayed 3 to 4 MB smaller
    (docs/loadtest.md, "Memory").  0 on PostgreSQL, whose cache is the server's."""
    from jpki_mock.config import load_config
    from jpki_mock.runtime import Runtime

    rt = Runtime.open(load_config(env))
    try:
        if rt.store.engine.dialect.name != "sqlite":
            return 0.0
        with rt.store.engine.connect() as conn:
            size = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
            page = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        # Negative: KiB; positive: pages (https://www.sqlite.org/pragma.html#pragma_cache_size).
        per_connection = -size * 1024 if size < 0 else size * page
        return per_connection * rt.config.ocsp.serve_threads / 2**20
    finally:
        rt.close()


def targets_of(env: dict, count: int, rng: random.Random, kind: str = "auth"
               ) -> tuple[bytes, bytes, list[oreq.Target]]:
    """(name hash, key hash, up to ``count`` distinct live records of ``kind``'s current CA, in
    random order): serials drawn from the seeded range and looked up in batches, so a national
    population is never loaded whole."""
    from sqlalchemy import func, select

    from jpki_mock.ca.models import Certificate
    from jpki_mock.config import load_config
    from jpki_mock.runtime import Runtime

    rt = Runtime.open(load_config(env))
    try:
        issuer = rt.authority.issuer(kind)
        now = rt.clock.now()
        with rt.store.session() as s:
            low, high = s.execute(select(func.min(Certificate.serial), func.max(Certificate.serial))
                                  .where(Certificate.ca_id == issuer.id)).one()
        drawn = rng.sample(range(low, high + 1), min(high - low + 1, int(count * 1.1) + 100))
        out: list[oreq.Target] = []
        for at in range(0, len(drawn), 5000):
            found = rt.status.lookup_many(issuer.id, drawn[at:at + 5000])
            out += [oreq.Target(st.serial, st.status, st.reason) for st in found.values() if st.not_after > now]
            if len(out) >= count:
                break
        return issuer.name_hash["sha1"], issuer.key_hash["sha1"], out[:count]
    finally:
        rt.close()


def lines_for(name_hash: bytes, key_hash: bytes, targets: list[oreq.Target]) -> list[str]:
    return [oreq.get_line(oreq.get_path("", oreq.request_der(name_hash, key_hash, t.serial)), key_hash, t)
            for t in targets]


def bytes_per_answer(env: dict, paths: list[str]) -> answer_bytes.AnswerBytes:
    """tracemalloc's measure of one answer (loadtest/bench/answer_bytes.py), in this process, over
    the store the server answers from."""
    from jpki_mock.config import load_config
    from jpki_mock.ocsp.http import OcspApp
    from jpki_mock.runtime import Runtime

    rt = Runtime.open(load_config(env))
    try:
        return answer_bytes.measure(OcspApp(rt.config, rt.clock, rt.store, rt.status, rt.keyring, rt.epoch), paths)
    finally:
        rt.close()


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


@dataclass
class Population:
    """One seeded store, its request files and its responder."""

    label: str
    work: Path
    env: dict
    port: int
    records: int
    seed_rate: float
    files: dict[str, Path]
    cold: int
    #: the RSS run's wrk lines, a distinct serial each
    rss: list[str]
    probe_path: str
    answer_paths: list[str]
    server: Server | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"


def prepare(label: str, records: int, port: int, args: argparse.Namespace, rng: random.Random) -> Population:
    """``jpki-mock init`` and ``seed --lazy`` in a new temporary directory, and the request files."""
    work = Path(tempfile.mkdtemp(prefix=f"jpki-bench-scale-{label}-"))
    env = dict(os.environ, JPKI_MOCK_DATA=str(work / "data"), JPKI_MOCK_KEY_PASSPHRASE="bench-passphrase",
               JPKI_MOCK_HOST=HOST, JPKI_MOCK_OCSP_WORKERS=str(args.workers),
               JPKI_MOCK_OCSP_ACCESS_CONTROL="false", JPKI_MOCK_OCSP_CACHE_MB=str(args.cache_mb))
    jpki(env, "init")
    settle()
    holders = max(1, round(records / RECORDS_PER_HOLDER))
    print(f"{label}: seeding {holders} holders (~{records} certificate records, lazy) ...", flush=True)
    line = jpki(env, "seed", "--lazy", "--holders", str(holders), "--seed", "20261204",
                *([] if args.progress else ["--no-progress"])).strip().splitlines()[-1]
    print(line, flush=True)
    seeded = {k: float(v) for k, v in (kv.split("=") for kv in line.split())}
    # The RSS run reaches at most a few thousand new serials a second: only those get lines.
    reachable = min(args.rss_serials, args.rss_seconds * RSS_LINES_PER_S)
    name_hash, key_hash, targets = targets_of(env, args.hot + args.cold_serials + reachable, rng)
    hot = targets[:args.hot]
    rest = targets[args.hot:]
    files = {"hot": write_lines(work / "hot.txt", lines_for(name_hash, key_hash, hot))}
    cold = rest[:args.cold_serials]
    rss_targets = rest[len(cold):]
    # Signature certificates too: a small store has too few user-auth records for a cold run.
    sign_name, sign_key, sign_cold = targets_of(env, args.cold_serials, rng, "sign")
    cold_lines = lines_for(name_hash, key_hash, cold) + lines_for(sign_name, sign_key, sign_cold)
    rng.shuffle(cold_lines)
    files["cold"] = write_lines(work / "cold.txt", cold_lines)
    return Population(label, work, env, port, int(seeded["certificates"]), seeded["certs_per_s"], files,
                      len(cold_lines), lines_for(name_hash, key_hash, rss_targets),
                      oreq.get_path("", oreq.request_der(name_hash, key_hash, hot[0].serial)),
                      [oreq.get_path("", oreq.request_der(name_hash, key_hash, t.serial))
                       for t in rest[:args.measure_answers + 1]])


def restart(pop: Population, args: argparse.Namespace) -> None:
    """Fresh responder processes for ``pop`` (nothing cached): ``jpki-mock ocsp serve`` on its port."""
    if pop.server is not None:
        pop.server.stop()
    pop.server = Server(f"responder-{pop.label}", [sys.executable, "-m", "jpki_mock.cli", "ocsp", "serve",
                                                   "--workers", str(args.workers), "--port", str(pop.port)],
                        pop.env, pop.work)
    pop.server.wait_ready(lambda: http(pop.base + pop.probe_path))


def measure(pops: list[Population], args: argparse.Namespace, wrk: str) -> dict[str, SizeResult]:
    """Cached and cold runs of every population, round by round and alternating which goes first,
    so a slower minute of this shared machine lands on both sides of each ratio; then the RSS run
    and the bytes per answer of each."""

    def bounded(pop: Population, name: str, seconds: int, threads: int, rate: float = 0.0,
                start: int | None = None) -> WrkResult:
        result, _ = run_wrk(pop.base + "/", pop.files[name], threads=threads, connections=args.connections,
                            duration=seconds, rate=rate, wrk=wrk, start=start)
        if result.errors:
            raise RuntimeError(f"{pop.label} {name}: {result.errors} wrong answers of {result.requests}")
        return result

    def rss_run(pop: Population) -> int:
        """The RSS run: wrk runs one after the other, each from the first serial not asked yet,
        until every one is asked or ``--rss-seconds`` have passed; how many were asked."""
        asked, deadline = 0, time.monotonic() + args.rss_seconds
        while asked < len(pop.rss) and (left := int(deadline - time.monotonic())) >= 1:
            seconds = min(RSS_SLICE_SECONDS, left)
            part = pop.rss[asked:asked + seconds * RSS_SLICE_LINES_PER_S]
            pop.files["rss"] = write_lines(pop.work / "rss.txt", part)
            asked += min(bounded(pop, "rss", seconds, 1, start=0).requests, len(part))
            if args.progress:
                print(f"{pop.label}: RSS run, {asked} distinct serials", flush=True)
        return asked

    cached: dict[str, list[WrkResult]] = {p.label: [] for p in pops}
    cold: dict[str, list[WrkResult]] = {p.label: [] for p in pops}
    for n in range(args.rounds):
        order = pops if n % 2 == 0 else pops[::-1]
        # Each round on fresh processes: the cold serials are first lookups again.
        for pop in order:
            restart(pop, args)
            bounded(pop, "hot", args.warm_seconds, 1)  # every worker signs and keeps the hot set
        for pop in order:
            cached[pop.label].append(bounded(pop, "hot", args.seconds, 2))
        for pop in order:
            run = bounded(pop, "cold", args.cold_seconds, 1)
            if run.requests > pop.cold:
                raise RuntimeError(f"{pop.label}: cold run made {run.requests} requests over {pop.cold} serials: "
                                   "some were repeats; lower --cold-seconds or raise --cold-serials")
            cold[pop.label].append(run)
        print(f"round {n + 1}/{args.rounds}: " + "  ".join(
            f"{p.label} cached {cached[p.label][-1].rps:.0f}/s cold {cold[p.label][-1].rps:.0f}/s" for p in pops),
            flush=True)
    out = {}
    for pop in pops:
        # RSS: fresh processes again; their size once warm is the base the cache grows from.
        restart(pop, args)
        assert pop.server is not None
        bounded(pop, "hot", 1, 1)
        base_mb = [rss_mb(p) for p in workers_of(pop.server.proc.pid)]
        asked = rss_run(pop)  # none in a small population: every serial went to the other runs
        rss = [rss_mb(p) for p in workers_of(pop.server.proc.pid)]
        _, _, text = fetch(pop.base + "/metrics")
        page = text.decode()
        charged = metric(page, "jpki_ocsp_process_cache_bytes") / max(1.0, metric(page, "jpki_ocsp_process_presigned"))
        evictions = metric(page, "jpki_ocsp_cache_evictions_total")
        pop.server.stop()
        pop.server = None
        measured = bytes_per_answer(pop.env, pop.answer_paths)
        out[pop.label] = SizeResult(pop.records, pop.seed_rate, median_run(cached[pop.label]),
                                    median_run(cold[pop.label]), rss, asked, measured.per_answer, base_mb,
                                    evictions, charged, page_cache_mb(pop.env))
    return out


def median_run(runs: list[WrkResult]) -> WrkResult:
    """The run of median rate, with the median of the runs' p99."""
    middle = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
    p99 = statistics.median(r.p99 for r in runs)
    return dataclasses.replace(middle, percentiles={**middle.percentiles, 99: p99})


def table(results: dict[str, SizeResult]) -> str:
    rows = [("size   records    seed/s   cached/s  cached_p99_ms  cold/s  cold_p99_ms  rss_serials  base_mb"
            "  rss_mb/worker  evictions  B/answer  charged")]
    for label, r in results.items():
        rows.append(f"{label:6} {r.records:>9} {r.seed_rate:>9.0f} {r.cached.rps:>9.0f} {r.cached.p99:>14.2f} "
                    f"{r.cold.rps:>7.0f} {r.cold.p99:>12.2f} {r.rss_serials:>12} "
                    f"{max(r.base_mb) if r.base_mb else float('nan'):>8.1f} "
                    f"{max(r.rss_mb) if r.rss_mb else float('nan'):>14.1f} {r.evictions:>10.0f} "
                    f"{r.bytes_per_answer:>9.0f} {r.charged_per_answer:>8.0f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--hot", type=int, default=512, help="serials of the cached run")
    parser.add_argument("--seconds", type=int, default=10, help="each measured cached run")
    parser.add_argument("--warm-seconds", type=int, default=5)
    parser.add_argument("--cold-seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of cached and cold runs, each over fresh responder processes; medians")
    parser.add_argument("--cold-serials", type=int, default=6_000,
                        help="distinct serials of each kind for the cold run (more than it can reach)")
    parser.add_argument("--rss-serials", type=int, default=1_000_000)
    # A million first lookups take about 8 minutes here (about 2,100 a second): the cap leaves
    # room for a slower machine and keeps the whole run under 15 minutes.
    parser.add_argument("--rss-seconds", type=int, default=570,
                        help="the RSS run stops after this long even if not every serial was asked")
    # Small enough that the RSS run fills it several times over (about 2.3 KB an answer): the
    # figure then shows what the budget holds, not a cache that never filled.
    parser.add_argument("--cache-mb", type=int, default=32, help="ocsp.cache_mb of the responder")
    parser.add_argument("--measure-answers", type=int, default=200,
                        help="answers tracemalloc measures in this process (bytes_per_answer)")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    wrk = wrk_binary()
    started = time.monotonic()
    with bench_lock():
        pops: list[Population] = []
        try:
            pops.append(prepare("small", args.small, PORT, args, random.Random(1)))
            pops.append(prepare("large", args.large, PORT + 1, args, random.Random(2)))
            results = measure(pops, args, wrk)
        finally:
            for pop in pops:
                if pop.server is not None:
                    pop.server.stop()
                shutil.rmtree(pop.work, ignore_errors=True)
    small, large = results["small"], results["large"]
    print(table(results))
    print(f"cache budget {args.cache_mb} MB a worker; RSS bound = budget + base + CertID parse cache "
          f"({PARSE_CACHE_MB:.1f} MB) + SQLite page cache ({large.page_cache_mb:.1f} MB): "
          f"{large.rss_bound(args.cache_mb):.1f} MB (large)")
    print(f"minutes={(time.monotonic() - started) / 60:.1f}")
    print(f"small={args.small} large={args.large} cached_ratio={large.cached.rps / small.cached.rps:.2f} "
          f"cold_ratio={large.cold.rps / small.cold.rps:.2f} "
          f"cached_p99_ratio={large.cached.p99 / small.cached.p99:.2f} "
          f"cold_p99_ratio={large.cold.p99 / small.cold.p99:.2f} "
          f"rss_mb_per_worker={max(large.rss_mb) if large.rss_mb else float('nan'):.0f} "
          f"bytes_per_answer={large.bytes_per_answer:.0f} seed_records_per_s={large.seed_rate:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
