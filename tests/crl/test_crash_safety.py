"""Crash safety of ``jpki-mock crl publish``, with real SIGKILLs, on SQLite and PostgreSQL.

A driver script (written into tmp_path by the test, not part of the product) wraps the
publisher's steps with monkeypatches and, at the step named by its environment, writes a mark
file and sleeps; the test then SIGKILLs the process exactly there.  After every kill: the
served CRL parses and verifies (openssl and asn1crypto + cryptography), the next publish
succeeds and leaves no temporary file, and over everything ever seen served, archived or
recorded, cRLNumbers strictly increase and no number names two different CRLs (RFC 5280
section 5.2.3).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asn1crypto import crl as acrl
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jpki_mock.config import CrlConfig
from jpki_mock.crl import schedule
from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream
from tests.support.cli_env import env_for

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["before-write", "after-write", "after-link", "after-rename", "after-commit"]

DRIVER = '''
"""Test driver: `jpki-mock` with pause points around the publisher's steps (CRL_TEST_PAUSE_AT)."""
import os, sys, time
from pathlib import Path

from jpki_mock.crl import publisher

STEP = os.environ.get("CRL_TEST_PAUSE_AT", "")
MARK = Path(os.environ.get("CRL_TEST_MARK", os.devnull))
writing = False


def pause(step):
    if step == STEP:
        # Atomically: the test reads the mark as soon as the name exists.
        MARK.with_name(MARK.name + ".tmp").write_text(str(os.getpid()))
        real_replace(MARK.with_name(MARK.name + ".tmp"), MARK)
        time.sleep(600)  # the test kills the process here


real_write, real_link, real_replace, real_prune = (publisher.write_crl, os.link, os.replace,
                                                   publisher.Publisher._prune)


def write_crl(*args, **kwargs):
    global writing
    pause("before-write")  # the number is reserved (committed), nothing written yet
    writing = True
    out = real_write(*args, **kwargs)
    pause("after-write")  # the temporary file is complete, not yet checked or linked
    return out


def link(src, dst, *args, **kwargs):
    real_link(src, dst, *args, **kwargs)
    if writing:
        pause("after-link")  # archived under its number, the previous CRL still served


def replace(src, dst, *args, **kwargs):
    real_replace(src, dst, *args, **kwargs)
    if writing:
        pause("after-rename")  # served, not yet recorded in the database


def prune(self, stream):
    pause("after-commit")  # recorded; the archive not yet pruned
    return real_prune(self, stream)


publisher.write_crl = write_crl
os.link, os.replace = link, replace
publisher.Publisher._prune = prune

from jpki_mock.cli import main

main(args=sys.argv[1:], prog_name="jpki-mock")
'''


class Harness:
    """Runs the driver against one data directory and keeps every CRL it ever saw, by number."""

    def __init__(self, rt, tmp_path: Path, partition: str = "13101"):
        self.rt = rt
        self.tmp = tmp_path
        self.driver = tmp_path / "driver.py"
        self.driver.write_text(DRIVER)
        self.env = {**os.environ, **env_for(rt.config)}
        if rt.config.database_url:
            self.env["JPKI_MOCK_DATABASE_URL"] = rt.config.database_url
        self.partition = partition
        self.pub = Publisher(CrlDeps.of(rt))
        self.stream = Stream(rt.authority.issuer("sign"), partition)
        self.ca_pem = tmp_path / "sign-ca.pem"
        self.ca_pem.write_bytes(self.stream.issuer.certificate.public_bytes(serialization.Encoding.PEM))
        self.seen: dict[int, str] = {}  # cRLNumber -> SHA-256 of every CRL ever observed under it
        self.served: list[int] = []  # the served number after each phase

    def args(self) -> list[str]:
        return [sys.executable, str(self.driver), "crl", "publish", "--ca", "sign-g1", "--partition", self.partition]

    def publish(self) -> None:
        out = subprocess.run(self.args(), env=self.env, cwd=ROOT, capture_output=True, timeout=300)
        assert out.returncode == 0, out.stderr.decode()[-3000:]

    def kill_at(self, step: str) -> None:
        mark = self.tmp / f"mark-{step}-{time.monotonic_ns()}"
        env = {**self.env, "CRL_TEST_PAUSE_AT": step, "CRL_TEST_MARK": str(mark)}
        proc = subprocess.Popen(self.args(), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 300
            while not mark.exists():
                if proc.poll() is not None:
                    raise AssertionError(f"the publisher ended before {step}: {proc.stderr.read().decode()[-3000:]}")
                assert time.monotonic() < deadline, f"the publisher never reached {step}"
                time.sleep(0.05)
            assert int(mark.read_text()) == proc.pid
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL

    def folder(self) -> Path:
        return self.pub.current_file(self.stream).parent

    def temp_files(self) -> list[str]:
        return sorted(p.name for p in self.folder().iterdir() if p.name.startswith(".tmp-"))

    def _see(self, data: bytes) -> int:
        number = acrl.CertificateList.load(data).crl_number_value.native
        digest = hashlib.sha256(data).hexdigest()
        assert self.seen.setdefault(number, digest) == digest, f"cRLNumber {number} names two different CRLs"
        return number

    def check_served(self) -> int | None:
        """The served CRL parses and verifies (openssl and asn1crypto + cryptography); returns its number."""
        current = self.pub.current_file(self.stream)
        if not current.exists():
            return None
        data = current.read_bytes()
        verified = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(current), "-CAfile",
                                  str(self.ca_pem), "-noout"], capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0 and "verify OK" in verified.stderr, verified.stderr
        assert x509.load_der_x509_crl(data).is_signature_valid(self.stream.issuer.certificate.public_key())
        number = self._see(data)
        if self.served:
            assert number >= self.served[-1], f"the served CRL went back from {self.served[-1]} to {number}"
        self.served.append(number)
        return number

    def check_archive_and_records(self) -> list[int]:
        archive = self.pub.archive_file(self.stream, 1).parent
        for path in sorted(archive.iterdir()) if archive.is_dir() else []:
            assert self._see(path.read_bytes()) == int(path.stem)
        records = self.pub.records(self.stream)
        numbers = [r.number for r in records]
        assert numbers == sorted(set(numbers))  # strictly increasing
        for r in records:
            assert self.seen.get(r.number, r.sha256) == r.sha256, f"record {r.number} names another CRL"
        return numbers

    def check_consistent(self) -> None:
        """After a publish (or a recovery): the served file is the latest record's, archived,
        no temporary file remains and no archive lacks a record."""
        served = self.check_served()
        numbers = self.check_archive_and_records()
        latest = self.pub.latest(self.stream)
        assert served == latest.number == numbers[-1]
        assert hashlib.sha256(self.pub.current_file(self.stream).read_bytes()).hexdigest() == latest.sha256
        assert sorted(int(p.stem) for p in self.pub.archive_file(self.stream, 1).parent.iterdir()) == numbers
        assert self.temp_files() == []


def _revoke_one(rt, issue) -> None:
    """A new entry, so that two CRLs built either side of it differ in content, not only in time."""
    cert = issue("13101", "sign", runtime=rt)["sign"]
    rt.authority.revoke("sign", cert.serial, "keyCompromise")


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_never_reuses_a_number(db_rt, issue, tmp_path, step):
    h = Harness(db_rt, tmp_path)
    _revoke_one(db_rt, issue)
    h.publish()
    h.check_consistent()
    first = h.served[-1]

    _revoke_one(db_rt, issue)
    h.kill_at(step)
    after_kill = h.check_served()
    h.check_archive_and_records()
    # The served CRL is the previous one until the rename, the new one from then on.
    assert after_kill == (first if STEPS.index(step) < STEPS.index("after-rename") else first + 1)
    if step == "after-write":
        assert h.temp_files() != []  # the crash left its temporary file behind ...

    _revoke_one(db_rt, issue)
    h.publish()
    h.check_consistent()  # ... and the next publish swept it
    assert h.served[-1] > after_kill
    numbers = h.check_archive_and_records()
    if step == "after-rename":
        # Served but not recorded when killed: recovery recorded it (same bytes) instead of reusing its number.
        assert numbers == [first, first + 1, first + 2]
    elif step == "after-commit":
        assert numbers == [first, first + 1, first + 2]
    else:
        # The reserved number was never served: it is skipped, not reused.
        assert numbers == [first, first + 2]
        assert not h.pub.archive_file(h.stream, first + 1).exists()


def test_recovery_at_start_reconciles_every_stream(db_rt, issue, tmp_path):
    """The server's start (crl.schedule.start, even with the schedule off) recovers what crashed
    publishers left in several streams, before anything is published again."""
    tokyo = Harness(db_rt, tmp_path, "13101")
    osaka = Harness(db_rt, tmp_path, "27100")
    for h in (tokyo, osaka):
        h.publish()
    _revoke_one(db_rt, issue)
    tokyo.kill_at("after-rename")
    osaka.kill_at("after-write")
    assert osaka.temp_files() != []
    assert tokyo.pub.latest(tokyo.stream).number == 1  # 2 is served, not recorded

    deps = CrlDeps.of(db_rt)
    deps = CrlDeps(deps.config.replace(crl=CrlConfig(schedule=False)), deps.clock, deps.store, deps.status,
                   deps.keyring)
    schedule.start(deps)()
    for h in (tokyo, osaka):
        h.check_consistent()
    assert [r.number for r in tokyo.pub.records(tokyo.stream)] == [1, 2]
    assert [r.number for r in osaka.pub.records(osaka.stream)] == [1]
    # The numbers reserved by the killed publishers stay used up.
    for h, expected in ((tokyo, 3), (osaka, 3)):
        h.publish()
        assert h.pub.latest(h.stream).number == expected
        h.check_consistent()


def test_concurrent_publishers_never_share_a_number(db_rt, tmp_path):
    """Three `jpki-mock crl publish` processes at once on one scope: three numbers, three CRLs."""
    h = Harness(db_rt, tmp_path)
    procs = [subprocess.Popen(h.args(), env=h.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
    h.check_consistent()
    assert h.check_archive_and_records() == [1, 2, 3]
