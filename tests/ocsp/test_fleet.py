"""A responder fleet on this machine, built from the shipped deploy/ files (docs/deploy.md).

Three "hosts", each a `jpki-mock ocsp serve` process bound to its own loopback address
(127.0.0.2-4, one port number for all, as on separate machines) with its own data directory
and deploy/responder.toml as its config.toml; they share only PostgreSQL, over TCP.  A real
HAProxy (Debian's) started with deploy/haproxy.cfg balances them on 127.0.0.1, checking
/readyz.  The test shows that a revocation reaches every host, then runs bounded load through
the balancer -- Python clients checking every answer, and Locust distributed (one master, two
workers, headless) -- kills one responder with SIGKILL in the middle, and asserts that the
balancer routes around it: no failed lookup (HAProxy's documented retry on another
responder), every answer valid, signed by the right CA and with the right status.
Every process is stopped by its PID (its process group).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.x509 import ocsp

from jpki_mock.loadtest import checks
from jpki_mock.loadtest.corpus import Corpus
from tests.support.loadtest import ROOT, run_loadtest
from tests.support.ocsp import PASSPHRASE, fresh_pg_database

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.postgres]

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
DEPLOY = ROOT / "deploy"


def _port_free_everywhere() -> int:
    """A port number free on 127.0.0.1 and on every host address (each host uses the same)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            for host in HOSTS:
                with socket.socket() as s:
                    s.bind((host, port))
        except OSError:
            continue
        return port
    raise AssertionError("no port free on every loopback host address")


class Proc:
    """A child in its own session (its process group is what is signalled), output in a log."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log = log_dir / f"{name}.log"
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=ROOT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "jpki_mock.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _wait(what: str, ok, procs: list[Proc], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            assert p.alive(), f"{p.name} exited:\n{p.tail()}"
        with contextlib.suppress(OSError, requests.RequestException):
            if ok():
                return
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s\n" + \
            "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs)
        time.sleep(0.2)


def _show_stat(admin: Path) -> dict[str, dict[str, str]]:
    """HAProxy's ``show stat`` for the responders' backend: server name -> row."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(admin))
        s.sendall(b"show stat\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode().lstrip("# ")
    return {r["svname"]: r for r in csv.DictReader(io.StringIO(text)) if r["pxname"] == "responders"}


class Fleet:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[Proc] = []

    def start(self) -> None:
        tmp = self.tmp
        self.pg = fresh_pg_database()
        base = {k: v for k, v in os.environ.items() if not k.startswith("JPKI_MOCK_") or k == "JPKI_MOCK_TEST_PG_URL"}
        # the CA's own host: it initialises the shared database, seeds, revokes
        self.ca_env = {**base, "JPKI_MOCK_DATA": str(tmp / "ca"), "JPKI_MOCK_DATABASE_URL": self.pg,
                       "JPKI_MOCK_KEY_PASSPHRASE": PASSPHRASE}
        _cli(self.ca_env, "init")
        _cli(self.ca_env, "seed", "--holders", "60", "--seed", "19", "--no-progress")
        self.port = _port_free_everywhere()
        self.responders: list[Proc] = []
        for i, host in enumerate(HOSTS, 1):
            data = tmp / f"host{i}"
            data.mkdir()
            shutil.copy(DEPLOY / "responder.toml", data / "config.toml")
            env = {**base, "JPKI_MOCK_DATA": str(data), "JPKI_MOCK_DATABASE_URL": self.pg,
                   "JPKI_MOCK_KEY_PASSPHRASE": PASSPHRASE, "JPKI_MOCK_HOST": host,
                   "JPKI_MOCK_OCSP_PORT": str(self.port)}
            # one worker per host: three hosts on two shared cores
            proc = Proc(f"r{i}", [sys.executable, "-m", "jpki_mock.cli", "ocsp", "serve", "--workers", "1"], env, tmp)
            self.procs.append(proc)
            self.responders.append(proc)
        for host in HOSTS:
            url = f"http://{host}:{self.port}/readyz"
            _wait(f"{url} ready", lambda url=url: requests.get(url, timeout=2).status_code == 200, self.procs)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.lb_port = int(s.getsockname()[1])
        self.admin = tmp / "haproxy.sock"
        lb_env = {**base, "JPKI_OCSP_BIND": f"127.0.0.1:{self.lb_port}", "JPKI_OCSP_ADMIN": str(self.admin),
                  **{f"JPKI_OCSP_R{i}": f"{host}:{self.port}" for i, host in enumerate(HOSTS, 1)}}
        self.haproxy = Proc("haproxy", ["haproxy", "-db", "-f", str(DEPLOY / "haproxy.cfg")], lb_env, tmp)
        self.procs.append(self.haproxy)
        self.url = f"http://127.0.0.1:{self.lb_port}"
        _wait("every responder UP in HAProxy",
              lambda: self.admin.exists() and all(r["status"] == "UP" for r in _show_stat(self.admin).values()),
              self.procs)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


@pytest.fixture
def fleet(tmp_path):
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is not installed: tests/run.py installs it (DEBIAN_PACKAGES)")
    f = Fleet(tmp_path)
    try:
        f.start()
        yield f
    finally:
        f.stop()


def _status(base: str, item, alg: str = "sha1"):
    body = requests.get(f"{base}/{item.get_path[alg]}", timeout=10).content
    return ocsp.load_der_ocsp_response(body).certificate_status


def test_fleet_routes_around_a_killed_responder(fleet, tmp_path):
    corpus_file = tmp_path / "corpus.json"
    _cli(fleet.ca_env, "loadtest", "corpus", "--certificates", "150", "--out", str(corpus_file))
    corpus = Corpus.load(corpus_file)
    goods = [i for i in corpus.items if i.category == "good" and i.kind == "auth"]
    target = goods[0]

    # A revocation reaches every host: each has the "good" answer cached first.
    hosts = [f"http://{h}:{fleet.port}" for h in HOSTS]
    for base in hosts:
        for _ in range(2):
            assert _status(base, target) == ocsp.OCSPCertStatus.GOOD
    _cli(fleet.ca_env, "cert", "revoke", "--issuer", str(target.issuer), "--serial", str(target.serial),
         "--reason", "keyCompromise")
    for base in hosts:
        _wait(f"{base} answers revoked", lambda base=base: _status(base, target) == ocsp.OCSPCertStatus.REVOKED,
              fleet.procs, timeout=10)
    # the corpus, built again, expects it revoked like every other revoked certificate
    _cli(fleet.ca_env, "loadtest", "corpus", "--certificates", "150", "--out", str(corpus_file))
    corpus = Corpus.load(corpus_file)
    assert any(i.serial == target.serial and i.expect.status == "revoked" for i in corpus.items)
    signature = checks.SignatureCheck({label: x509.load_der_x509_certificate(i["der"])
                                       for label, i in corpus.issuers.items()})

    # Python clients through the balancer, checking every answer, until told to stop.
    stop = threading.Event()
    results: list[tuple[float, str | None]] = []
    client_retries: list[float] = []

    def client(seed: int) -> None:
        session = requests.Session()
        items = corpus.items[seed::4] or corpus.items
        n = 0
        while not stop.is_set():
            item = items[n % len(items)]
            n += 1
            # the AIA URL's path (/ocsp, stripped by HAProxy) and the responder's own (/), by GET and POST
            prefix = "/ocsp" if n % 2 else ""
            problem: str | None = None
            # The documented retry (docs/deploy.md "Retries"): HAProxy replays what it can; a lookup
            # whose connection dropped at the instant of the kill is sent once more by the client
            # (an OCSP request only asks, RFC 6960 section 4.1).  A second failure is a failure.
            for attempt in (1, 2):
                try:
                    if n % 3 == 0:
                        resp = session.post(fleet.url + (prefix or "/"), data=item.der["sha1"], timeout=10,
                                            headers={"Content-Type": "application/ocsp-request"})
                    else:
                        resp = session.get(f"{fleet.url}{prefix}/{item.get_path['sha1']}", timeout=10)
                    problem = checks.check_ocsp(item.expect, item.serial, "sha1", resp.status_code,
                                                resp.headers.get("Content-Type"), resp.content, signature=signature,
                                                issuer=item.issuer)
                    break
                except requests.ConnectionError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    if attempt == 1:
                        client_retries.append(time.monotonic())
                except requests.RequestException as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    break
            results.append((time.monotonic(), problem and f"serial {item.serial}: {problem}"))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    locust_out = tmp_path / "locust"
    outcome: dict[str, object] = {}

    def locust() -> None:
        try:
            outcome["line"], outcome["output"] = run_loadtest(
                "--profile", "soak", "--duration", "12s", "--rate", "40", "--workers", "2", "--classes", "auth,sign",
                "--target", fleet.url, "--ocsp-path", "/ocsp", "--corpus", str(corpus_file), "--out", str(locust_out),
                "--seed", "3", env=fleet.ca_env, timeout=180)
        except BaseException as exc:  # reported below, in the test's thread
            outcome["error"] = exc

    runner = threading.Thread(target=locust)
    runner.start()
    try:
        _wait("Locust's workers under way", lambda: ((locust_out / "locust-master.log").exists()
              and "2 workers connected" in (locust_out / "locust-master.log").read_text(errors="replace"))
              or "error" in outcome, [], timeout=120)
        time.sleep(3)
        victim = fleet.responders[1]
        victim.kill(signal.SIGKILL)  # the host is gone: no goodbye, connections simply drop
        victim.proc.wait(timeout=10)
        killed_at = time.monotonic()
        _wait("HAProxy marks the killed responder down",
              lambda: _show_stat(fleet.admin)["r2"]["status"].startswith("DOWN"), [fleet.haproxy], timeout=10)
        runner.join(timeout=200)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        runner.join(timeout=30)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    stat = _show_stat(fleet.admin)
    problems = [p for _, p in results if p]
    after = [p for t, p in results if t > killed_at]
    assert not problems, f"{len(problems)} of {len(results)} answers wrong: {problems[:5]}"
    assert len(after) >= 20 and len(results) >= 100, (len(results), len(after))
    # Client retries only around the kill: a closed connection is the lost host's, never routine.
    assert all(t >= killed_at - 5 for t in client_retries) and len(client_retries) <= 8, client_retries
    assert stat["r1"]["status"] == "UP" and stat["r3"]["status"] == "UP", stat
    assert stat["r2"]["status"].startswith("DOWN"), stat["r2"]
    line = outcome["line"]
    assert isinstance(line, dict)
    assert line["failures"] == 0 and line["requests"] >= 100, outcome["output"]
    assert "2 workers connected" in (locust_out / "locust-master.log").read_text()
    tallies = [json.loads(p.read_text()) for p in locust_out.glob("requests-worker-*.json")]
    assert len(tallies) == 2 and all(t["requests"] > 0 for t in tallies), tallies
    print(f"\nfleet: python_answers={len(results)} after_kill={len(after)} locust_requests={line['requests']} "
          f"locust_failures={line['failures']} client_retries={len(client_retries)} "
          f"haproxy_retries={stat['BACKEND']['wretr']} "
          f"redispatches={stat['BACKEND']['wredis']} r2={stat['r2']['status']}")

