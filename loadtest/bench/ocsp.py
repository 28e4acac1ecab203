"""OCSP benchmark: this responder against a bare-server ceiling and `openssl ocsp -multi 2`.

``make bench-ocsp`` (``python -m jpki_mock.loadtest.bench.ocsp``), as root, on this machine, in one go:

1. seeds a CA with a few thousand real certificates (``jpki-mock seed``) in a temporary
   data directory and picks a set of good and revoked serials of the user-authentication CA;
2. moves itself into a private network namespace whose only interface is loopback, so every
   server and the load generator talk over 127.0.0.1 only (``openssl ocsp -port`` binds
   every interface: docs/sources.md section 7);
3. measures with wrk, three rounds, each round running every scenario once:
   * ceiling: a WSGI app returning fixed bytes (the responder's own answer for one serial,
     body and headers) under granian, same worker count (``loadtest/ceiling.py``);
   * cached GET: ``jpki-mock ocsp serve`` answering GET requests for the serial set (warmed
     first by an unmeasured wrk run, so every worker answers from pre-signed responses);
   * nonced POST: the same responder, every request with 16 fresh random nonce octets, so
     every answer is signed on the spot;
   * ``openssl ocsp -multi 2`` serving the same CA and serials from an ``index.txt`` built
     from the store, signing with a delegated responder certificate issued for it by ``ca/``,
     over GET and over nonced POST; started before each of its runs and stopped right after
     it (a wedged process spins a core: openssl#23934);
4. then runs cached GET and nonced POST again, paced to half their median maximum rate, for
   the p99 latency there;
5. prints req/s, p50/p99 and error counts per scenario (medians of the rounds), the ratios
   against the targets, and, as the last line, the summary other checks read.

Every wrk response is checked as it arrives (``loadtest/wrk/ocsp.lua``: HTTP 200,
responseStatus successful, the expected certStatus of the serial it answers, the echoed
fresh nonce); before and after the rounds every serial is also asked once and the answer
re-read and its signature verified with pyca/cryptography (``loadtest/ocsp_requests.py``).
Every process started here is stopped by its PID; every wrk run is bounded by ``-d``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from cryptography import x509

from jpki_mock.config import OcspConfig
from jpki_mock.loadtest import ocsp_requests as oreq
from jpki_mock.loadtest.bench import openssl_peer
from jpki_mock.loadtest.bench.ceiling import app_headers as ceiling_app_headers
from jpki_mock.loadtest.bench.wrk import WrkError, WrkResult, run_wrk, wrk_binary
from jpki_mock.loadtest.procs import CommandFailed, ancestors, run_jpki, stop_tree, tree_cpu_seconds

CLONE_NEWNET = 0x40000000
HOST = "127.0.0.1"
LOCK_FILE = "/tmp/jpki-bench.lock"
PORTS = {"ceiling": 18081, "responder": 18082, "openssl": 18083}
#: where ``jpki-mock ocsp serve`` answers (the standalone responder is mounted at the root).
RESPONDER_PREFIX = ""

#: seconds of the unmeasured warm-up run over the GET set (``Bench._warm``)
WARM_SECONDS = 3
TARGETS = {"cached_vs_openssl": 12.0, "cached_vs_ceiling": 0.80, "nonced_vs_openssl": 1.0, "half_rate_p99_ms": 5.0}


class BenchError(RuntimeError):
    """The benchmark could not run (missing tool, a server that did not start, ...)."""


# ------------------------------------------------------------------ isolation and processes
def enter_private_netns() -> None:
    """Move this process (and so every child) into a new network namespace with only loopback up."""
    if os.geteuid() != 0:
        raise BenchError("run as root: the benchmark moves itself into a private network namespace "
                         "(unshare -n) so `openssl ocsp -port`, which binds every interface, stays on loopback")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise BenchError(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


class Server:
    """A server process started here, its log, and how to wait for it and stop it."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path, cwd: Path | None = None):
        self.name, self.cmd = name, cmd
        self.log = log_dir / f"{name}.log"
        self._fh = open(self.log, "ab")  # noqa: SIM115 - the process writes to it until stop() closes it
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._fh, stderr=subprocess.STDOUT, cwd=cwd,
                                     stdin=subprocess.DEVNULL)

    def fail(self, why: str) -> BenchError:
        tail = self.log.read_text(errors="replace")[-2000:]
        return BenchError(f"{self.name} ({' '.join(self.cmd[:4])} ...): {why}\n--- log tail ---\n{tail}")

    def wait_ready(self, probe, timeout: float = 60.0) -> None:
        """Poll ``probe()`` (a real request, never an empty connection) until it succeeds."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.fail(f"exited with {self.proc.returncode}")
            try:
                probe()
                return
            except (OSError, urllib.error.URLError) as exc:
                last = exc
                time.sleep(0.1)
        raise self.fail(f"not answering after {timeout:.0f} s ({last})")

    def stop(self) -> None:
        stop_tree(self.proc)
        self._fh.close()


def fetch(url: str, body: bytes | None = None, headers: dict | None = None,
          timeout: float = 10.0) -> tuple[int, list[tuple[str, str]], bytes]:
    """(HTTP status, response headers, body) of one request; an error status is returned, not raised."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers.items(), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.items(), exc.read()


def http(url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    status, _, answer = fetch(url, body, headers, timeout)
    return status, answer


@contextlib.contextmanager
def bench_lock(path: str = LOCK_FILE, wait_s: float = 900.0):
    """Hold ``/tmp/jpki-bench.lock`` (as ``flock /tmp/jpki-bench.lock ...`` does) so two benchmarks
    never share this 2-core machine; a lock already held by an ancestor (``flock ... make
    bench-ocsp``) counts as ours."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if _held_by_ancestor(path):
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"another benchmark has held {path} for {wait_s:.0f} s") from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)


def _held_by_ancestor(path: str) -> bool:
    inode = os.stat(path).st_ino
    ours = ancestors()
    with open("/proc/locks") as fh:
        for line in fh:
            fields = line.split()
            # "1: FLOCK  ADVISORY  WRITE 4242 00:2f:1234 0 EOF"
            if (len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode)
                    and int(fields[4]) in ours):
                return True
    return False


# ------------------------------------------------------------------ the data set
@dataclass
class DataSet:
    """The CA, the serials asked about, and the files every server and wrk run need."""

    dir: Path
    env: dict
    ca_cert: x509.Certificate
    name_hash: bytes
    key_hash: bytes
    targets: list[oreq.Target]
    credential: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.credential}"}


def jpki(env: dict, *args: str) -> str:
    """``jpki-mock ARGS``'s output; its stderr passed on, a failure as :class:`BenchError`."""
    try:
        done = run_jpki(env, *args)
    except CommandFailed as exc:
        raise BenchError(str(exc)) from None
    sys.stderr.write(done.stderr)
    return done.stdout


def prepare(work: Path, holders: int, n_serials: int, workers: int, rng: random.Random,
            access_control: bool = True) -> DataSet:
    from cryptography.hazmat.primitives.serialization import Encoding
    from sqlalchemy import select

    from jpki_mock.ca.models import Certificate
    from jpki_mock.config import load_config
    from jpki_mock.runtime import Runtime

    data = work / "data"
    env = dict(os.environ, JPKI_MOCK_DATA=str(data), JPKI_MOCK_HOST=HOST, JPKI_MOCK_PORT=str(PORTS["responder"]),
               JPKI_MOCK_OCSP_WORKERS=str(workers), JPKI_MOCK_WORKERS=str(workers),
               # Every feature on: only registered relying parties are answered (as at J-LIS).
               JPKI_MOCK_OCSP_ACCESS_CONTROL="true" if access_control else "false")
    print(f"seeding {holders} holders into {data} ...", flush=True)
    jpki(env, "init")
    print(jpki(env, "seed", "--holders", str(holders), "--seed", "20261126").strip().splitlines()[-1], flush=True)
    credential = jpki(env, "rp", "add", "benchmark", "--kinds", "both").strip().splitlines()[-1]

    rt = Runtime.open(load_config(env))
    try:
        issuer = rt.authority.issuer("auth")
        now = rt.clock.now()
        with rt.store.session() as s:
            rows = s.execute(select(Certificate.serial, Certificate.status, Certificate.reason, Certificate.revoked_at,
                                    Certificate.not_after).where(Certificate.ca_id == issuer.id)
                             .order_by(Certificate.serial)).all()
        index_rows = [openssl_peer.IndexRow(r.serial, r.not_after, r.status, r.revoked_at, r.reason) for r in rows]
        index = openssl_peer.write_index(work / "index.txt", index_rows)
        rsigner, rkey = rt.keyring.write_peer_responder(issuer.id, work)
        ca_pem = work / "ca.pem"
        ca_pem.write_bytes(issuer.certificate.public_bytes(Encoding.PEM))

        def aware(t):
            return t if t.tzinfo else t.replace(tzinfo=UTC)

        live = [r for r in rows if aware(r.not_after) > now]
        revoked = [r for r in live if r.status == "revoked"]
        good = [r for r in live if r.status == "good"]
        # About a fifth revoked, as far as the seeded mix allows; the rest good.
        n_rev = min(len(revoked), max(1, n_serials // 5))
        picked = rng.sample(revoked, n_rev) + rng.sample(good, min(len(good), n_serials - n_rev))
        rng.shuffle(picked)
        targets = [oreq.Target(r.serial, r.status, r.reason) for r in picked]
        ds = DataSet(work, env, issuer.certificate, issuer.name_hash["sha1"], issuer.key_hash["sha1"], targets,
                     credential, {"index": index, "rsigner": rsigner, "rkey": rkey, "ca": ca_pem})
    finally:
        rt.close()
    # wrk data files: GET paths for the responder and for openssl, nonced POST templates.
    for name, prefix in (("get_responder", RESPONDER_PREFIX), ("get_openssl", "")):
        lines = [oreq.get_line(oreq.get_path(prefix, oreq.request_der(ds.name_hash, ds.key_hash, t.serial)),
                               ds.key_hash, t) for t in targets]
        ds.files[name] = write_lines(work / f"{name}.txt", lines)
    ds.files["post"] = write_lines(work / "post.txt", [oreq.post_line(ds.name_hash, ds.key_hash, t) for t in targets])
    print(f"serials: {len(targets)} of {issuer.label} ({sum(t.status == 'revoked' for t in targets)} revoked); "
          f"openssl index: {len(index_rows)} certificates", flush=True)
    return ds


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ correctness samples
def sample(base: str, ds: DataSet, targets: list[oreq.Target], prefix: str, post: bool) -> tuple[int, list[str]]:
    """Ask each target once (GET, or POST with a fresh nonce); re-read and verify each answer."""
    problems = []
    for t in targets:
        nonce = os.urandom(oreq.NONCE_LENGTH) if post else None
        der = oreq.request_der(ds.name_hash, ds.key_hash, t.serial, nonce)
        if post:
            status, body = http(base + (prefix or "/"), der,
                                {**ds.headers, "Content-Type": "application/ocsp-request"})
        else:
            status, body = http(base + oreq.get_path(prefix, der), headers=ds.headers)
        if status != 200:
            problems.append(f"serial {t.serial}: HTTP {status}")
            continue
        problems += oreq.check_response(body, t, ds.ca_cert, nonce)
    return len(targets), problems


# ------------------------------------------------------------------ scenarios
@dataclass
class Scenario:
    name: str
    label: str
    url: str
    data: Path
    server: Callable[[], Server] | None = None  # the Server answering (its CPU time is measured)
    restart: Callable[[], None] | None = None  # restarts the server before each run (openssl)
    stop: Callable[[], None] | None = None  # stops the server after each run (openssl)
    rate: float = 0.0
    results: list[WrkResult] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU time per answered request

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.results) if self.results else float("nan")

    @property
    def cpu_us_median(self) -> float:
        return statistics.median(self.cpu_us) if self.cpu_us else float("nan")

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)


def fmt_row(s: Scenario) -> str:
    runs = " ".join(f"{r.rps:.0f}" for r in s.results)
    extra = f" (paced at {s.rate:.0f}/s)" if s.rate else ""
    return (f"{s.label:<34} {s.median('rps'):>9.0f} {s.median('p50'):>8.2f} {s.median('p99'):>8.2f} "
            f"{s.errors:>7d} {s.cpu_us_median:>8.0f}   [{runs}]{extra}")


def run_scenario(s: Scenario, args, wrk: str, logs: Path, headers: dict) -> WrkResult:
    if s.restart is not None:
        s.restart()
    assert s.server is not None, f"scenario {s.name} names no server"
    pid = s.server().proc.pid
    cpu0 = tree_cpu_seconds(pid)
    result, text = run_wrk(s.url, s.data, threads=args.threads, connections=args.connections,
                           duration=args.duration, rate=s.rate, headers=headers, wrk=wrk)
    s.cpu_us.append((tree_cpu_seconds(pid) - cpu0) * 1e6 / max(1, result.requests))
    if s.stop is not None:
        s.stop()
    with open(logs / "wrk.log", "a") as fh:
        fh.write(f"=== {s.name} rate={s.rate}\n{text}\n")
    s.results.append(result)
    return result


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jpki_mock.loadtest.bench.ocsp", description=__doc__.split("\n\n")[0])
    ap.add_argument("--holders", type=int, default=2000, help="holders seeded (about 1.9 certificates each)")
    ap.add_argument("--serials", type=int, default=512, help="distinct serials asked about")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes (responder and ceiling)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="runs per scenario (medians are reported)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--server-threads", type=int, default=OcspConfig().serve_threads,
                    help="Python threads per server worker, for the responder (ocsp serve --threads) and the "
                         "ceiling alike (default: what ocsp serve uses, %(default)s)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--openssl-multi", type=int, default=2, help="openssl ocsp -multi N")
    ap.add_argument("--access-control", action=argparse.BooleanOptionalAction, default=True,
                    help="the responder answers registered relying parties only (default: on, as at J-LIS; "
                         "every request carries the credential, for the ceiling and openssl too)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data files)")
    args = ap.parse_args(argv)
    for name in ("holders", "serials", "workers", "duration", "rounds", "threads", "connections", "openssl_multi",
                 "server_threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.connections < args.threads:
        ap.error("--connections must be at least --threads (wrk gives every thread a connection)")
    try:
        with bench_lock():
            return Bench(args).run()
    except (BenchError, WrkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


class Bench:
    def __init__(self, args):
        self.args = args
        self.servers: list[Server] = []

    def start(self, name: str, cmd: list[str], env: dict, probe) -> Server:
        server = Server(name, cmd, env, self.work)
        self.servers.append(server)
        server.wait_ready(probe)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        self.servers.remove(server)

    def run(self) -> int:
        from tqdm import tqdm

        args = self.args
        wrk = wrk_binary()
        openssl = shutil.which("openssl")
        if not openssl:
            raise BenchError("openssl is not installed (apt-get install -y openssl)")
        enter_private_netns()
        # Every process of the benchmark (servers, peer, wrk) inherits this: other work on the
        # machine disturbs the runs less, and all scenarios alike.
        with contextlib.suppress(OSError):
            os.nice(-10)
        self.work = Path(tempfile.mkdtemp(prefix="jpki-bench-ocsp-"))
        try:
            ds = prepare(self.work, args.holders, args.serials, args.workers, random.Random(20261126),
                         args.access_control)
            return self._measure(ds, wrk, openssl, tqdm)
        finally:
            for server in list(self.servers):
                server.stop()
            if args.keep:
                print(f"kept {self.work}", file=sys.stderr)
            else:
                shutil.rmtree(self.work, ignore_errors=True)

    def _measure(self, ds: DataSet, wrk: str, openssl: str, tqdm) -> int:
        args = self.args
        bases = {k: f"http://{HOST}:{p}" for k, p in PORTS.items()}
        first = ds.targets[0]
        first_get = oreq.get_path(RESPONDER_PREFIX, oreq.request_der(ds.name_hash, ds.key_hash, first.serial))

        # The responder, standalone, as users run it, but without the access log: the ceiling
        # writes none either (the log's own cost: docs/configuration.md, "Logs").
        responder = self.start("responder", [sys.executable, "-m", "jpki_mock.cli", "ocsp", "serve",
                    "--workers", str(args.workers), "--port", str(PORTS["responder"]), "--no-access-log"]
                               + (["--threads", str(args.server_threads)] if args.server_threads else []),
                   ds.env, lambda: _expect_200(http(bases["responder"] + first_get, headers=ds.headers)))
        checked, problems = sample(bases["responder"], ds, ds.targets, RESPONDER_PREFIX, post=False)
        n, p = sample(bases["responder"], ds, ds.targets[:64], RESPONDER_PREFIX, post=True)
        checked, problems = checked + n, problems + p
        print(f"responder: {checked} answers re-read and verified before the runs, {len(problems)} wrong", flush=True)
        self._warm(bases["responder"], ds, wrk)

        # The ceiling answers with the responder's own answer for the first serial: its body and
        # its headers (six with the RFC 5019 caching ones; with two, wrk and granian did less
        # work per ceiling answer than per responder answer).
        status, headers, body = fetch(bases["responder"] + first_get, headers=ds.headers)
        if status != 200:
            raise responder.fail(f"answered HTTP {status} to the request the ceiling copies")
        headers = ceiling_app_headers(headers)
        body_file = self.work / "ceiling-body.der"
        body_file.write_bytes(body)
        headers_file = self.work / "ceiling-headers.json"
        headers_file.write_text(json.dumps(headers))
        ceiling_data = write_lines(self.work / "get_ceiling.txt",
                                   [oreq.get_line(first_get or "/", ds.key_hash, first)])
        ceiling_env = dict(ds.env, JPKI_BENCH_CEILING_BODY=str(body_file), JPKI_BENCH_CEILING_HEADERS=str(headers_file))
        ceiling = self.start("ceiling", ceiling_command(args.workers, PORTS["ceiling"], args.server_threads),
                             ceiling_env, lambda: _expect_200(http(bases["ceiling"] + "/")))

        # openssl ocsp: restarted before every run and stopped right after it, because a connection
        # closed without a request (which wrk's end of run leaves behind) wedges one of its
        # processes in a busy loop (openssl#23934): left running, it would take a core from
        # every scenario measured after it.
        peer_cmd = openssl_peer.command(openssl=openssl, port=PORTS["openssl"], index=ds.files["index"],
                                        ca=ds.files["ca"], rsigner=ds.files["rsigner"], rkey=ds.files["rkey"],
                                        multi=args.openssl_multi)
        peer: dict[str, Server] = {}
        peer_get = oreq.get_path("", oreq.request_der(ds.name_hash, ds.key_hash, first.serial))

        def restart_openssl():
            if "server" in peer:
                self.stop(peer.pop("server"))
            peer["server"] = self.start("openssl", peer_cmd, ds.env,
                                        lambda: _expect_200(http(bases["openssl"] + peer_get)))

        def stop_openssl():
            if "server" in peer:
                self.stop(peer.pop("server"))

        restart_openssl()
        peer_targets = ds.targets[:64]
        n, p = sample(bases["openssl"], ds, peer_targets, "", post=False)
        n2, p2 = sample(bases["openssl"], ds, peer_targets, "", post=True)
        print(f"openssl ocsp: {n + n2} answers re-read and verified before the runs, {len(p + p2)} wrong", flush=True)
        peer_problems = p + p2

        scen = {
            "ceiling": Scenario("ceiling", "ceiling (bare WSGI, fixed bytes)", bases["ceiling"], ceiling_data,
                                server=lambda: ceiling),
            "cached": Scenario("cached", "responder cached GET", bases["responder"], ds.files["get_responder"],
                               server=lambda: responder),
            "nonced": Scenario("nonced", "responder nonced POST", bases["responder"], ds.files["post"],
                               server=lambda: responder),
            "openssl_get": Scenario("openssl_get", f"openssl ocsp -multi {args.openssl_multi} GET", bases["openssl"],
                                    ds.files["get_openssl"], server=lambda: peer["server"], restart=restart_openssl,
                                    stop=stop_openssl),
            "openssl_post": Scenario("openssl_post", f"openssl ocsp -multi {args.openssl_multi} nonced POST",
                                     bases["openssl"], ds.files["post"], server=lambda: peer["server"],
                                     restart=restart_openssl, stop=stop_openssl),
        }
        order = list(scen.values())
        total = len(order) * args.rounds + 2 * args.rounds
        with tqdm(total=total, desc="wrk runs", unit="run", file=sys.stderr) as bar:
            for _ in range(args.rounds):
                for s in order:
                    bar.set_postfix_str(s.name)
                    run_scenario(s, args, wrk, self.work, ds.headers)
                    bar.update(1)
            half = {
                "cached_half": Scenario("cached_half", "responder cached GET, half rate", bases["responder"],
                                        ds.files["get_responder"], server=lambda: responder,
                                        rate=scen["cached"].median("rps") / 2),
                "nonced_half": Scenario("nonced_half", "responder nonced POST, half rate", bases["responder"],
                                        ds.files["post"], server=lambda: responder,
                                        rate=scen["nonced"].median("rps") / 2),
            }
            for _ in range(args.rounds):
                for s in half.values():
                    bar.set_postfix_str(s.name)
                    run_scenario(s, args, wrk, self.work, ds.headers)
                    bar.update(1)
        stop_openssl()

        n, p = sample(bases["responder"], ds, ds.targets, RESPONDER_PREFIX, post=False)
        print(f"responder: {n} answers re-read and verified after the runs, {len(p)} wrong", flush=True)
        problems += p
        for line in (problems + peer_problems)[:10]:
            print(f"  wrong answer: {line}")
        return self._report(ds, scen, half, problems, peer_problems)

    def _warm(self, base: str, ds: DataSet, wrk: str) -> None:
        """One unmeasured wrk run over the GET set, then a short nonced one.  The samples above
        went over fresh connections that the kernel hands to either worker, so each worker
        has signed only part of the set; the rest would be signed during the first measured
        cached run (about half the set, ~1.1 ms a signature), which lowered it by about a tenth.
        wrk's 32 keep-alive connections reach both workers and cycle through every serial."""
        args = self.args
        for data, seconds in ((ds.files["get_responder"], WARM_SECONDS), (ds.files["post"], 1)):
            result, _ = run_wrk(base, data, threads=args.threads, connections=args.connections, duration=seconds,
                                headers=ds.headers, wrk=wrk)
            if result.errors:
                raise BenchError(f"warm-up run over {data.name}: {result.errors} wrong answers of {result.requests}")
        print(f"responder: warmed with wrk ({WARM_SECONDS} s GET, 1 s nonced POST), 0 wrong", flush=True)

    def _report(self, ds, scen, half, problems, peer_problems) -> int:
        args = self.args
        print()
        print(f"OCSP benchmark: {len(ds.targets)} serials, {args.workers} workers, access control "
              f"{'on' if args.access_control else 'off'}, wrk -t{args.threads} -c{args.connections} "
              f"-d{args.duration}s, medians of {args.rounds} (runs in brackets)")
        print(f"{'scenario':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU us':>8}")
        for s in list(scen.values()) + list(half.values()):
            print(fmt_row(s))
        ceiling, cached, nonced = (scen[k].median("rps") for k in ("ceiling", "cached", "nonced"))
        o_get, o_post = scen["openssl_get"].median("rps"), scen["openssl_post"].median("rps")
        # The peer's better figure of its two, so the ratios are never flattered by its weaker one.
        openssl = max(o_get, o_post)
        errors = (sum(scen[k].errors for k in ("ceiling", "cached", "nonced")) + sum(s.errors for s in half.values())
                  + len(problems))
        peer_errors = scen["openssl_get"].errors + scen["openssl_post"].errors + len(peer_problems)
        r = {
            "cached_vs_openssl": ratio(cached, openssl),
            "cached_vs_ceiling": ratio(cached, ceiling),
            "nonced_vs_openssl": ratio(nonced, openssl),
        }
        print()
        print(f"openssl peer: GET {o_get:.0f} req/s, nonced POST {o_post:.0f} req/s; ratios use the higher, "
              f"{openssl:.0f}; peer errors {peer_errors}")
        checks = [
            ("cached GET vs openssl", r["cached_vs_openssl"], f">= {TARGETS['cached_vs_openssl']}x",
             r["cached_vs_openssl"] >= TARGETS["cached_vs_openssl"]),
            ("cached GET vs ceiling", r["cached_vs_ceiling"], f">= {TARGETS['cached_vs_ceiling']:.2f}",
             r["cached_vs_ceiling"] >= TARGETS["cached_vs_ceiling"]),
            ("nonced POST vs openssl", r["nonced_vs_openssl"], f">= {TARGETS['nonced_vs_openssl']}x",
             r["nonced_vs_openssl"] >= TARGETS["nonced_vs_openssl"]),
        ]
        for s in half.values():
            checks.append((f"{s.label} p99 ms", s.median("p99"), f"< {TARGETS['half_rate_p99_ms']}",
                           s.median("p99") < TARGETS["half_rate_p99_ms"]))
        checks.append(("errors (responder and ceiling)", errors, "== 0", errors == 0))
        for label, value, target, ok in checks:
            print(f"  {label:<42} {value:>8.3f}  target {target:<8} {'met' if ok else 'MISSED'}")
        print(f"ceiling_rps={ceiling:.0f} cached_rps={cached:.0f} nonced_rps={nonced:.0f} openssl_rps={openssl:.0f} "
              f"cached_vs_openssl={r['cached_vs_openssl']:.2f} cached_vs_ceiling={r['cached_vs_ceiling']:.2f} "
              f"nonced_vs_openssl={r['nonced_vs_openssl']:.2f} errors={errors}", flush=True)
        return 0


def _expect_200(answer: tuple[int, bytes]) -> None:
    if answer[0] != 200:
        raise OSError(f"HTTP {answer[0]}")


def ceiling_command(workers: int, port: int, threads: int | None = None) -> list[str]:
    """granian with the settings ``jpki-mock ocsp serve`` uses, serving :mod:`loadtest.ceiling`."""
    return [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", str(workers), "--factory",
            "--backlog", "2048", "--no-access-log", "--host", HOST, "--port", str(port)] \
        + (["--blocking-threads", str(threads)] if threads else []) + ["jpki_mock.loadtest.bench.ceiling:app_factory"]


if __name__ == "__main__":
    sys.exit(main())
