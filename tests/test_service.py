"""The server as a service, with real processes (jpki_mock/server.py, docs/configuration.md):

- the settings ``make run`` / ``jpki-mock serve`` was started with (``PORT``, time travel) reach
  the CLI in another process without that environment: the URLs in a CLI-issued certificate
  and in a CLI-published CRL name the server's port (read back with asn1crypto), and
  ``jpki-mock clock`` agrees with ``GET /admin/api/clock``;
- a taken port (our own server, or any other program) is one line on stderr and a non-zero
  exit, never a shared port or a traceback;
- SIGINT to the whole process group (Ctrl-C) and SIGTERM stop every process within 2 s, and
  the OCSP lookup counts of every worker are in the database afterwards (the standalone
  responder's too).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from asn1crypto import crl as asn1_crl
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from tests.support import ROOT, free_port

pytestmark = [pytest.mark.server, pytest.mark.slow]

JPKI = [sys.executable, "-m", "jpki_mock.cli"]
#: a POST that is not an OCSP request: answered malformedRequest, and counted
JUNK = b"not an OCSP request"


def base_env(data: Path) -> dict[str, str]:
    """The environment of a second terminal: the data directory, none of the server's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPKI_MOCK_") and k not in ("PORT", "HOST")}
    return {**env, "JPKI_MOCK_DATA": str(data)}


def cli(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*JPKI, *args], env=base_env(data), capture_output=True, text=True, cwd=ROOT, timeout=120)
    if check:
        assert proc.returncode == 0, f"jpki-mock {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def group_pids(pgid: int) -> set[int]:
    """Every live (not zombie) process in the process group."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    out.add(int(entry.name))
    return out


class Service:
    """A server started as a terminal starts it: its own process group (session), log to a file."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path, processes: int):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200 \
                        and len(group_pids(self.proc.pid)) >= processes:
                    return
            time.sleep(0.2)
        self.kill()
        raise AssertionError(f"not serving: {log.read_text()}")

    def stop(self, sig: signal.Signals, group: bool = True) -> float:
        """Send ``sig`` (to the group, as a terminal does, or to the launcher alone); the seconds
        until every process of the group is gone."""
        pids = group_pids(self.proc.pid)
        start = time.monotonic()
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            os.kill(self.proc.pid, sig)
        while group_pids(self.proc.pid) & pids and time.monotonic() - start < 10:
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        left = group_pids(self.proc.pid) & pids
        self.kill()
        assert not left, f"still running after {elapsed:.1f} s: {sorted(left)}\n{self.log.read_text()}"
        return elapsed

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def serve_env(data: Path, port: int, **extra: str) -> dict[str, str]:
    # A flush period longer than any test: counts found after the stop were flushed by the stop.
    return {**base_env(data), "PORT": str(port), "JPKI_MOCK_OCSP_STATS_FLUSH_SECONDS": "3600", **extra}


def ocsp_total(data: Path) -> int:
    return int(json.loads(cli(data, "ocsp", "stats", "--json").stdout)["total"])


def post_junk(url: str, count: int) -> None:
    for _ in range(count):
        resp = requests.post(url, data=JUNK, headers={"Content-Type": "application/ocsp-request"}, timeout=5)
        assert resp.status_code == 400


def uris(general_names) -> list[str]:
    return [name.native for name in general_names if name.name == "uniform_resource_identifier"]


def certificate_urls(path: Path) -> list[str]:
    _, _, der = pem.unarmor(path.read_bytes())
    cert = asn1_x509.Certificate.load(der)
    found = [url for dp in cert.crl_distribution_points_value for url in uris(dp["distribution_point"].chosen)]
    found += [ad["access_location"].native for ad in cert.authority_information_access_value
              if ad["access_method"].native == "ocsp"]
    found += [q["qualifier"].native for policy in cert.certificate_policies_value
              for q in (policy["policy_qualifiers"] or []) if q["policy_qualifier_id"].native ==
              "certification_practice_statement"]
    return found


def test_make_run_port_reaches_the_cli_and_ctrl_c_stops_everything(tmp_path):
    """`PORT=<p> JPKI_MOCK_TIME_TRAVEL=1 make run`, then the CLI in another process without that
    environment; then Ctrl-C."""
    data, port = tmp_path / "var", free_port()
    stamp = tmp_path / "installed-run"
    stamp.touch()  # newer than pyproject.toml: `make run` installs nothing here
    command = ["make", "--no-print-directory", "run", f"VENV={sys.prefix}", f"RUN_STAMP={stamp}"]
    server = Service(command, serve_env(data, port, JPKI_MOCK_TIME_TRAVEL="1"), port, tmp_path / "run.log",
                     processes=4)  # make, the launcher, two workers
    try:
        first = server.log.read_text()
        assert f"recorded in {data / 'config.toml'}: port = {port}, time_travel = true" in first
        assert requests.get(server.base + "/").json()["metrics"] == f"{server.base}/metrics"

        shown = json.loads(cli(data, "config", "show", "--json").stdout)
        assert shown["port"] == {"value": port, "source": f"file {data / 'config.toml'}"}
        assert shown["public_url"]["value"] == server.base

        cli(data, "holder", "add", "--name", "山田　太郎", "--dob", "1980-12-31", "--gender", "1",
            "--address", "東京都千代田区千代田1-1")
        cli(data, "cert", "issue", "--holder", "1", "--p12-passphrase", "secret123", "--out", str(tmp_path / "cards"))
        for kind in ("sign", "auth"):
            urls = certificate_urls(tmp_path / "cards" / f"{kind}-1000001.pem")
            assert len(urls) == 3, urls  # CRL DP, AIA OCSP, CPS
            assert all(url.startswith(server.base + "/") for url in urls), urls
            # and the server answers them
            crl_url = next(url for url in urls if "/crl/" in url)
            assert requests.get(crl_url, timeout=10).status_code in (200, 404)

        cli(data, "crl", "publish")
        crl = asn1_crl.CertificateList.load((data / "crl" / "sign" / "g1" / "13101.crl").read_bytes())
        idp = uris(crl.issuing_distribution_point_value["distribution_point"].chosen)
        assert idp == [f"{server.base}/crl/sign/g1/13101.crl"]
        assert requests.get(idp[0], timeout=10).content == crl.dump()

        # time travel: the CLI and the API agree, both ways
        token = (data / "admin-token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        assert "time travel disabled" not in cli(data, "clock", "show").stdout
        cli(data, "clock", "advance", "1d")
        clock = requests.get(server.base + "/admin/api/clock", headers=auth, timeout=10).json()
        assert clock["enabled"] is True and clock["offset_seconds"] == 86400
        requests.post(server.base + "/admin/api/clock/reset", headers=auth, json={}, timeout=10).raise_for_status()
        assert "offset +0 s" in cli(data, "clock", "show").stdout

        # a second `make run`-like start on the same data directory: the port is taken
        again = cli(data, "serve", check=False)
        assert again.returncode != 0
        assert again.stderr.splitlines() == [
            (f"error: port: 127.0.0.1:{port} is already in use (another jpki-mock server or another program); "
             "stop it or choose another port (PORT=... make run, or --port)")], again.stderr
        assert "Traceback" not in again.stdout + again.stderr
        assert requests.get(server.base + "/healthz", timeout=5).status_code == 200

        post_junk(server.base + "/ocsp", 20)
    except BaseException:
        server.kill()
        raise
    elapsed = server.stop(signal.SIGINT)
    assert elapsed < 2, f"Ctrl-C took {elapsed:.2f} s"
    assert ocsp_total(data) == 20


def test_port_held_by_another_program(tmp_path):
    data = tmp_path / "var"
    cli(data, "init")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        for command in (["serve"], ["ocsp", "serve", "--port", str(port)]):
            env = {**base_env(data), "PORT": str(port)}
            proc = subprocess.run([*JPKI, *command], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
            assert proc.returncode == 4, proc.stderr
            assert len(proc.stderr.splitlines()) == 1 and "already in use" in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stdout + proc.stderr
    # nothing was recorded by the refused start
    assert "port" not in (data / "config.toml").read_text()


@pytest.mark.parametrize(("guard", "sig", "group"), [("off", signal.SIGTERM, False), ("on", signal.SIGINT, True),
                                                     ("on", signal.SIGTERM, False)])
def test_stop_flushes_every_worker(tmp_path, guard, sig, group):
    """SIGTERM to the launcher only, as systemd or docker stop a service, and Ctrl-C; both of
    granian's interfaces (WSGI, and RSGI with the slow-client guard)."""
    data, port = tmp_path / "var", free_port()
    env = serve_env(data, port, JPKI_MOCK_SLOW_CLIENT_GUARD=guard)
    server = Service([*JPKI, "serve", "--init"], env, port, tmp_path / "serve.log", processes=3)
    try:
        post_junk(server.base + "/ocsp", 30)
    except BaseException:
        server.kill()
        raise
    assert server.stop(sig, group=group) < 2
    assert ocsp_total(data) == 30


def test_standalone_responder_sigterm_keeps_its_counts(tmp_path):
    data, port = tmp_path / "var", free_port()
    cli(data, "init")
    server = Service([*JPKI, "ocsp", "serve", "--port", str(port)], serve_env(data, free_port()), port,
                     tmp_path / "ocsp.log", processes=3)
    try:
        for path in ("/healthz", "/readyz"):
            resp = requests.get(server.base + path, timeout=5)
            assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
        post_junk(server.base + "/", 25)
    except BaseException:
        server.kill()
        raise
    assert server.stop(signal.SIGTERM) < 2
    assert ocsp_total(data) == 25


def test_make_run_installs_what_running_needs_and_make_test_the_extras(tmp_path):
    """Two stamps (Makefile): `make run` installs the package alone; `make test` adds the extras."""
    venv = tmp_path / "venv"

    def plan(target: str) -> list[str]:
        proc = subprocess.run(["make", "--no-print-directory", "-n", "-B", target, f"VENV={venv}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stdout.splitlines() if "pip install" in line and "--upgrade pip" not in line]

    assert plan("run") == [f"{venv}/bin/python -m pip install --quiet -e ."]
    assert plan("test") == [f"{venv}/bin/python -m pip install --quiet -e .",
                            f"{venv}/bin/python -m pip install --quiet -e '.[test,loadtest]'"]
