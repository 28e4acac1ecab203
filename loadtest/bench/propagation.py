"""Propagation benchmark: how soon two responders on other "hosts" answer "revoked".

``make bench-propagation``.  On loopback only, bounded in count (``--revocations``) and time
(``--max-seconds``, ``--timeout``):

* a throwaway PostgreSQL cluster (:mod:`jpki_mock.loadtest.bench.pg`; as root it runs as the
  ``postgres`` user), or a database created on ``--database-url``'s cluster;
* an authority in this process (its own data directory) issues the certificates;
* two responder processes, ``jpki-mock ocsp serve --workers 1`` with
  ``ocsp.revocation_check = "database"`` (the sequence read on every request; ``--revocation-check
  database-push`` for the pushed check: LISTEN/NOTIFY, then a poll every second as a safety net,
  jpki_mock/epoch.py), each with its own data directory: no file is shared, as between hosts;
  they learn of revocations only from PostgreSQL;
* under load: one client thread per responder hammers GETs for the certificates about to be
  revoked (the current one and the next few), on a keep-alive connection;
* the certificates are revoked one at a time through the authority; for each, one poller per
  responder asks for it in a tight loop from the moment the revoke call returned, and the time
  from that return to the first "revoked" answer is that responder's propagation time.

A "good" answer counts as stale when the request carrying it was sent after the revoke call
returned (the load threads' requests too).  Answers are parsed with pyca/cryptography.
Progress lines go to stdout; the last line is exactly
``revocations=<n> p50_ms=<x> p99_ms=<y> max_ms=<z> stale=<n>`` (percentiles over both
responders' times; a responder that never answered "revoked" within ``--timeout`` counts as
the timeout).  The exit status is 1 when a stale answer or a timeout was seen.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

from jpki_mock.loadtest.bench import pg

PASSPHRASE = "bench-propagation"
HOLDER = {"name": "山田\u3000太郎", "date_of_birth": "319801231", "gender": "1", "address": "東京都千代田区千代田1-1"}
#: how many certificates ahead of the current one the load threads ask for
AHEAD = 4


def log(message: str) -> None:
    print(message, flush=True)


@dataclass
class Target:
    serial: int
    path: str
    #: perf_counter() when the revoke call returned (None before)
    revoked_at: float | None = None
    #: per responder: seconds from the return to the first "revoked" received
    seen: dict[int, float] = field(default_factory=dict)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    stale: int = 0
    errors: int = 0
    #: serials with at least one stale answer
    stale_serials: set[int] = field(default_factory=set)

    def add(self, requests: int = 0, stale: int = 0, errors: int = 0) -> None:
        with self.lock:
            self.requests += requests
            self.stale += stale
            self.errors += errors


class Client:
    """A keep-alive HTTP/1.1 connection to one responder; :meth:`status` returns the answer's
    certificate status name ("GOOD", "REVOKED", "UNKNOWN") and when the request was sent."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def status(self, path: str) -> tuple[str, float]:
        for attempt in (0, 1):
            sent = time.perf_counter()
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt:
                    raise
        answer = ocsp.load_der_ocsp_response(body)
        if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return answer.response_status.name, sent
        return answer.certificate_status.name, sent

    def close(self) -> None:
        self.conn.close()


def issue(rt, count: int) -> list[tuple[int, str]]:
    """``count`` signature certificates (one holder each): (serial, GET path) pairs."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    out = []
    for i in range(count):
        holder = rt.authority.create_holder({**HOLDER, "name": f"山田\u3000{i}郎"})
        item = rt.authority.issue(holder.id, "sign", public_key=pem)[0]
        cert = x509.load_der_x509_certificate(rt.authority.der_of(item.certificate))
        issuer = item.issuer.certificate
        der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(
            serialization.Encoding.DER)
        out.append((item.certificate.serial, "/" + base64.b64encode(der).decode()))
    return out


def start_responder(data_dir: Path, url: str, port: int, logfile: Path, check: str = "database") -> subprocess.Popen:
    env = {**os.environ, "JPKI_MOCK_DATA": str(data_dir), "JPKI_MOCK_DATABASE_URL": url,
           "JPKI_MOCK_KEY_PASSPHRASE": PASSPHRASE, "JPKI_MOCK_OCSP_REVOCATION_CHECK": check,
           "JPKI_MOCK_OCSP_PORT": str(port)}
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(logfile, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "jpki_mock.cli", "ocsp", "serve", "--workers", "1"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(proc: subprocess.Popen, port: int, logfile: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"responder on port {port} exited: {logfile.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"responder on port {port} did not start: {logfile.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def run(url: str, work: Path, revocations: int, timeout: float, max_seconds: float, show_stale: bool = False,
        check: str = "database") -> int:
    from jpki_mock.clock import SystemClock
    from jpki_mock.config import load_config
    from jpki_mock.runtime import Runtime

    started = time.monotonic()
    rt = Runtime.open(load_config({}, data_dir=work / "revoker", key_passphrase=PASSPHRASE, database_url=url),
                      SystemClock())
    procs: list[subprocess.Popen] = []
    logs = [work / f"responder{i}.log" for i in range(2)]
    try:
        rt.authority.init()
        log(f"issuing {revocations} certificates")
        targets = [Target(serial, path) for serial, path in issue(rt, revocations)]
        ports = [pg.free_port(), pg.free_port()]
        for i, port in enumerate(ports):
            procs.append(start_responder(work / f"responder{i}", url, port, logs[i], check))
        for proc, port, logfile in zip(procs, ports, logs, strict=True):
            wait_ready(proc, port, logfile, time.monotonic() + 60)
        log(f"responders on 127.0.0.1:{ports[0]} and 127.0.0.1:{ports[1]} (separate data directories, "
            f"revocation_check = {check!r})")

        tally = Tally()
        current = [0]  # index of the certificate being revoked
        done = threading.Event()

        def judge(target: Target, status: str, sent: float, who: str = "") -> int:
            """1 if this answer is a stale "good": its request left after the revoke returned."""
            revoked_at = target.revoked_at
            stale = status == "GOOD" and revoked_at is not None and sent > revoked_at
            if stale:
                with tally.lock:
                    tally.stale_serials.add(target.serial)
            if stale and show_stale and revoked_at is not None:
                log(f"stale: serial {target.serial} ({who}) asked {1000 * (sent - revoked_at):.2f} ms after the "
                    f"revoke returned")
            return int(stale)

        def load(port: int) -> None:
            client = Client(port)
            try:
                while not done.is_set():
                    base = current[0]
                    for target in targets[base:base + AHEAD + 1]:
                        try:
                            status, sent = client.status(target.path)
                        except (OSError, http.client.HTTPException):
                            tally.add(errors=1)
                            continue
                        tally.add(requests=1, stale=judge(target, status, sent, f"load thread, port {port}"))
            finally:
                client.close()

        # Warm-up: every responder has signed (and cached) an answer for every certificate.
        warm = [Client(port) for port in ports]
        for target in targets:
            for client in warm:
                status, _ = client.status(target.path)
                if status != "GOOD":
                    raise SystemExit(f"certificate {target.serial}: {status} before its revocation")
        loaders = [threading.Thread(target=load, args=(port,), daemon=True) for port in ports]
        for thread in loaders:
            thread.start()
        log(f"load: {len(loaders)} client threads on the next {AHEAD + 1} certificates; revoking")

        pollers = warm
        for index, target in enumerate(targets):
            if time.monotonic() - started > max_seconds:
                log(f"stopping after {index} revocations: --max-seconds {max_seconds} reached")
                targets = targets[:index]
                break
            current[0] = index
            rt.authority.revoke("sign", target.serial, "keyCompromise")
            target.revoked_at = returned = time.perf_counter()
            waiting = dict(enumerate(pollers))
            # Tight polling, both responders in turn, from the moment the call returned.
            while waiting:
                for r, client in list(waiting.items()):
                    status, sent = client.status(target.path)
                    received = time.perf_counter()
                    tally.add(requests=1, stale=judge(target, status, sent, f"poller, responder {r}"))
                    if status == "REVOKED":
                        target.seen[r] = received - returned
                        del waiting[r]
                    elif received - returned > timeout:
                        target.seen[r] = timeout
                        del waiting[r]
                        log(f"certificate {target.serial}: responder {r} still not revoked after {timeout} s")
            if (index + 1) % 10 == 0 or index + 1 == len(targets):
                times = [t * 1000 for done_target in targets[:index + 1] for t in done_target.seen.values()]
                log(f"revoked {index + 1}/{len(targets)}: p50_ms={percentile(times, 50):.1f} "
                    f"max_ms={max(times):.1f} stale={tally.stale} requests={tally.requests} errors={tally.errors}")
        done.set()
        for thread in loaders:
            thread.join(timeout=15)
        for client in pollers:
            client.close()
        times = [t * 1000 for target in targets for t in target.seen.values()]
        timeouts = sum(1 for target in targets for t in target.seen.values() if t >= timeout)
        log(f"answers={tally.requests} errors={tally.errors} timeouts={timeouts} "
            f"revocations_with_stale_answers={len(tally.stale_serials)}")
        log(f"revocations={len(targets)} p50_ms={percentile(times, 50):.1f} p99_ms={percentile(times, 99):.1f} "
            f"max_ms={max(times):.1f} stale={tally.stale}")
        return 1 if timeouts or tally.stale else 0
    finally:
        for proc in procs:
            stop(proc)
        for logfile in logs:
            if logfile.exists():
                # to stderr: the last line on stdout is the result
                noted = [line for line in logfile.read_text(errors="replace").splitlines()
                         if "ERROR" in line or "Traceback" in line or "lost the database" in line]
                for line in noted[:5]:
                    print(f"{logfile.name}: {line}", file=sys.stderr, flush=True)
        rt.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revocations", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds a responder may take to answer revoked (default 5)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop revoking after this long")
    parser.add_argument("--show-stale", action="store_true", help="a line for every stale answer")
    parser.add_argument("--revocation-check", choices=["database", "database-push"], default="database",
                        help="the responders' ocsp.revocation_check (default: database, read per request)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL cluster to create the benchmark's database on (default: start one)")
    args = parser.parse_args(argv)
    if args.revocations < 1:
        parser.error("--revocations must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="jpki-bench-propagation-"))
    data = tmp = None
    try:
        if args.database_url:
            base = args.database_url
        else:
            base, data, tmp = pg.start_cluster()
            log(f"throwaway PostgreSQL at {base}")
        url = pg.create_database(base, prefix="bench_")
        return run(url, work, args.revocations, args.timeout, args.max_seconds, args.show_stale,
                   args.revocation_check)
    finally:
        if data is not None and tmp is not None:
            pg.stop_cluster(data, tmp)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
