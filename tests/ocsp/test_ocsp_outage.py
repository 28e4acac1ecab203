"""Database outages (issue 16 point 3).  First the revocation sequence carried through an outage
(ocsp/outage.py's SequenceRead, with a clock the test moves); then a real PostgreSQL outage
under load: a cluster of the test's own is stopped
(``pg_ctl stop -m fast``) and started again while the combined server (``serve``) and the
standalone responder (``ocsp serve``), both with ``ocsp.revocation_check = "database"``, keep
answering.

During the outage: warmed GETs are still ``good`` within ``ocsp.outage_grace_seconds`` and
``tryLater`` after it; cold lookups and nonced requests needing a status not in memory are
``tryLater`` (503, Retry-After); ``/readyz`` and the admin API are 503 with JSON naming the
database; ``/healthz`` is 200; nothing is ever a 500.  After PostgreSQL is back everything
answers again without a restart, and a revocation made then is answered ``revoked``.
Every answer is parsed back with asn1crypto.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import pytest
import requests
from asn1crypto import crl as a_crl
from asn1crypto import ocsp as a_ocsp
from sqlalchemy.exc import IntegrityError, OperationalError

from jpki_mock.config import load_config
from jpki_mock.db import Outage, StoreUnavailable
from jpki_mock.ocsp.outage import SequenceRead
from jpki_mock.runtime import Runtime
from tests.support.ocsp import (
    PASSPHRASE,
    call,
    cert_id,
    get_path,
    issue,
    multi_request,
    ocsp_app,
    request_der,
    start_responder,
)
from tests.support.pg import Cluster

GRACE = 10  # ocsp.outage_grace_seconds for this test: long enough to probe, short enough to wait out
RECOVERY_BOUND = 5.0  # seconds after PostgreSQL accepts connections again


def ocsp_status(resp: requests.Response) -> str:
    """responseStatus, and the certStatus of a successful answer: "good", "try_later", ..."""
    parsed = a_ocsp.OCSPResponse.load(resp.content)
    status = parsed["response_status"].native
    if status != "successful":
        return status
    return parsed.basic_ocsp_response["tbs_response_data"]["responses"][0]["cert_status"].name


class FakeDatabase:
    """The revocation sequence's read, up or down, with a clock the test moves."""

    def __init__(self):
        self.now = 1000.0
        self.value = 5
        self.down = False
        self.reads = 0

    def read(self) -> int:
        self.reads += 1
        if self.down:
            raise OperationalError("SELECT value FROM counters", {}, Exception("connection refused"))
        return self.value


def test_sequence_carried_through_an_outage_within_the_grace():
    db = FakeDatabase()
    seq = SequenceRead(db.read, grace=60, outage=Outage(), clock=lambda: db.now, probe_seconds=0.1)
    assert seq[0] == 5
    db.down, db.now = True, db.now + 1
    assert seq[0] == 5  # the last value read, one second old
    reads = db.reads
    db.now += 0.05
    assert seq[0] == 5 and db.reads == reads  # between two tries the database is left alone
    db.now += 0.1
    assert seq[0] == 5 and db.reads == reads + 1  # tried again
    db.now = 1000.0 + 60  # exactly the grace after the last successful read
    assert seq[0] == 5
    db.now += 0.5
    with pytest.raises(StoreUnavailable) as err:
        seq[0]
    assert err.value.field == "database" and "ocsp.outage_grace_seconds is 60" in err.value.message
    assert "connection refused" in err.value.message
    db.down, db.value = False, 7
    db.now += 0.2
    assert seq[0] == 7  # back: the next try reads the database again
    assert seq.age() == 0


def test_sequence_unreadable_from_the_start_or_with_no_grace():
    db = FakeDatabase()
    db.down = True
    with pytest.raises(StoreUnavailable):
        SequenceRead(db.read, grace=60, outage=Outage(), clock=lambda: db.now)[0]
    db.down = False
    seq = SequenceRead(db.read, grace=0, outage=Outage(), clock=lambda: db.now)
    assert seq[0] == 5
    db.down, db.now = True, db.now + 0.01
    with pytest.raises(StoreUnavailable):
        seq[0]


def test_sequence_other_errors_are_not_an_outage():
    def broken() -> int:
        raise IntegrityError("SELECT", {}, Exception("a bug, not an outage"))

    with pytest.raises(IntegrityError):
        SequenceRead(broken, grace=60, outage=Outage())[0]


def crl_list(data: bytes) -> a_crl.CertificateList:
    if not data.startswith(b"0"):  # PEM
        from asn1crypto import pem

        data = pem.unarmor(data)[2]
    return a_crl.CertificateList.load(data)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    yield c
    c.destroy()


@pytest.fixture(scope="module")
def servers(cluster, tmp_path_factory):
    data = tmp_path_factory.mktemp("outage") / "data"
    env = {"JPKI_MOCK_DATABASE_URL": cluster.url, "JPKI_MOCK_OCSP_REVOCATION_CHECK": "database",
           "JPKI_MOCK_OCSP_OUTAGE_GRACE_SECONDS": str(GRACE)}
    # One worker each: a warmed answer lives in the memory of the worker that signed it.
    combined = start_responder(data, env, workers=1, args=("serve", "--no-background"))
    standalone = None
    try:
        standalone = start_responder(data, env, workers=1, init=False)
        yield combined, standalone
    finally:
        for srv in (standalone, combined):
            if srv is not None:
                srv.stop()


class Probe:
    """The requests of the test, against both servers, with every HTTP status recorded."""

    def __init__(self, combined, standalone):
        self.combined, self.standalone = combined, standalone
        self.session = requests.Session()
        self.token = combined.token
        self.statuses: Counter = Counter()
        self._lock = threading.Lock()

    def _record(self, label: str, resp: requests.Response) -> requests.Response:
        with self._lock:
            self.statuses[(label, resp.status_code)] += 1
        return resp

    def ocsp_bases(self):
        return (("serve", self.combined.base + "/ocsp"), ("ocsp serve", self.standalone.base))

    def get(self, base: str, item, session=None) -> requests.Response:
        return self._record("ocsp", (session or self.session).get(base + get_path(request_der(item)), timeout=10))

    def post(self, base: str, item, nonce: bytes | None = None) -> requests.Response:
        return self._record("ocsp", self.session.post(base + "/", data=request_der(item, nonce=nonce), timeout=10,
                                                      headers={"Content-Type": "application/ocsp-request"}))

    def admin(self, method: str, path: str, **kw) -> requests.Response:
        return self._record("admin", self.session.request(method, self.combined.base + "/admin/api" + path,
                                                          headers={"Authorization": f"Bearer {self.token}"},
                                                          timeout=10, **kw))

    def plain(self, url: str, session=None) -> requests.Response:
        return self._record("plain", (session or self.session).get(url, timeout=10))


def _load(probe: Probe, warm, unknown: str, stop: threading.Event, seen: Counter, phase: list[str]) -> None:
    """Background load: warmed lookups, a never-issued serial (never kept in memory: every
    lookup reads the database) and readiness, in a loop until ``stop``; counted by
    ``(phase[0], what, HTTP status, OCSP status)``."""
    session = requests.Session()
    i = 0
    while not stop.is_set():
        try:
            for _, base in probe.ocsp_bases():
                resp = probe.get(base, warm[i % len(warm)], session) if i % 3 else probe.plain(base + unknown, session)
                seen[(phase[0], "ocsp", resp.status_code, ocsp_status(resp))] += 1
            resp = probe.plain(probe.standalone.base + "/readyz", session)
            seen[(phase[0], "readyz", resp.status_code, "-")] += 1
        except requests.RequestException as exc:
            seen[(phase[0], "error", 0, type(exc).__name__)] += 1
        i += 1
        stop.wait(0.01)


def _wait_until(check, bound: float) -> float:
    """Seconds until ``check()`` held (polled every 20 ms), failing past ``bound``."""
    t0 = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - t0
        except requests.RequestException:
            pass
        if time.monotonic() - t0 > bound:
            pytest.fail(f"not recovered {bound} s after PostgreSQL came back")
        time.sleep(0.02)


@pytest.mark.server
@pytest.mark.postgres
@pytest.mark.slow
def test_postgresql_outage_under_load(servers, cluster):
    combined, standalone = servers
    probe = Probe(combined, standalone)
    # This process's own responder, with revocation_check = "epoch" (the epoch file of the
    # servers' data directory): an outage does not touch pre-signed answers there at all.  Said
    # in the environment: the servers recorded theirs ("database") in the data directory's file.
    rt = Runtime.open(load_config({"JPKI_MOCK_OCSP_REVOCATION_CHECK": "epoch"}, data_dir=combined.data_dir,
                                  key_passphrase=PASSPHRASE, database_url=cluster.url))
    try:
        _outage_under_load(probe, rt, cluster)
    finally:
        rt.close()


def _outage_under_load(probe: Probe, rt: Runtime, cluster: Cluster) -> None:
    combined, standalone = probe.combined, probe.standalone
    items = issue(rt, "both", n=5)
    warm, cold = items[:6], items[6:]
    epoch_app = ocsp_app(rt)
    assert rt.config.ocsp.revocation_check == "epoch"

    def local(item, path: str | None = None):
        resp = call(epoch_app, "GET", path or get_path(request_der(item)))
        probe.statuses[("in-process", resp.status)] += 1
        return resp

    # ---- before: warm both servers (pre-signed GETs, and the statuses a nonced POST needs)
    for name, base in probe.ocsp_bases():
        for item in warm:
            resp = probe.get(base, item)
            assert resp.status_code == 200 and ocsp_status(resp) == "good", name
        assert ocsp_status(probe.post(base, warm[0], nonce=os.urandom(16))) == "good"
    for item in warm:
        assert local(item).ocsp.certificate_status.name == "GOOD"
    assert probe.plain(combined.base + "/readyz").json() == {"status": "ready"}
    assert probe.admin("GET", "/cas").status_code == 200
    combined.cli("crl", "publish")  # the server runs without its CRL schedule (--no-background)
    crl_url = combined.base + f"/crl/{warm[0].kind}/g1/full.crl"
    crl_before = probe.plain(crl_url)
    assert crl_before.status_code == 200

    unknown = get_path(multi_request([cert_id(warm[0].issuer, 10**15 + 7)]))
    stop, seen, phase = threading.Event(), Counter(), ["before"]
    loader = threading.Thread(target=_load, args=(probe, warm, unknown, stop, seen, phase), daemon=True)
    loader.start()
    try:
        time.sleep(0.5)
        took_down = cluster.stop()
        down_at = time.monotonic()
        phase[0] = "outage, within the grace"

        # ---- during the outage, within the grace
        for name, base in probe.ocsp_bases():
            for item in warm:
                resp = probe.get(base, item)
                assert resp.status_code == 200 and ocsp_status(resp) == "good", (name, resp.status_code)
            nonced = probe.post(base, warm[0], nonce=os.urandom(16))
            assert nonced.status_code == 200 and ocsp_status(nonced) == "good", name  # status in memory
            for resp in (probe.get(base, cold[0]), probe.post(base, cold[1], nonce=os.urandom(16))):
                assert resp.status_code == 503, (name, resp.status_code)
                assert resp.headers["Retry-After"] == "1"
                assert resp.headers["Content-Type"] == "application/ocsp-response"
                assert ocsp_status(resp) == "try_later"
        for base in (combined.base, standalone.base):
            ready = probe.plain(base + "/readyz")
            assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
            body = ready.json()
            assert body["error"] == "storage_unavailable" and body["field"] == "database", body
            assert "database is unreachable" in body["message"]
            assert probe.plain(base + "/healthz").json() == {"status": "alive"}
        admin = probe.admin("GET", "/cas")
        assert admin.status_code == 503 and admin.headers["Retry-After"] == "1"
        assert admin.json()["error"] == "storage_unavailable" and admin.json()["field"] == "database"
        revoke = probe.admin("POST", f"/certificates/{cold[2].kind}/{cold[2].serial}/revoke",
                             json={"reason": "keyCompromise"})
        assert revoke.status_code == 503 and revoke.json()["error"] == "storage_unavailable"
        metrics = probe.plain(combined.base + "/ocsp/metrics")
        assert metrics.status_code == 503 and "database" in metrics.text
        assert probe.plain(standalone.base + "/").status_code == 200  # the banner needs no database
        crl = probe.plain(crl_url)  # a file on disk: served as it was
        assert crl.status_code == 200 and crl.content == crl_before.content
        assert crl_list(crl.content)["tbs_cert_list"]["this_update"].native is not None
        for item in warm:
            assert local(item).ocsp.certificate_status.name == "GOOD"
        resp = local(cold[0])
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert resp.asn1["response_status"].native == "try_later"
        resp = local(None, "/metrics")
        assert resp.status == 503 and resp.headers["Retry-After"] == "1" and b"database" in resp.body
        within_grace = time.monotonic() - down_at
        assert within_grace < GRACE - 1, "the checks above took too long to be within the grace"

        # ---- past the grace: even warmed answers are tryLater (how stale an answer may be is bounded)
        time.sleep(max(0.0, GRACE - (time.monotonic() - down_at)))
        phase[0] = "outage, past the grace"
        time.sleep(0.5)
        for name, base in probe.ocsp_bases():
            resp = probe.get(base, warm[1])
            assert resp.status_code == 503 and ocsp_status(resp) == "try_later", name
        # ... but with the epoch check they need no bound: no revocation commits without the database
        assert local(warm[1]).ocsp.certificate_status.name == "GOOD"
        # ... and the CRL file is served still, the issuer list read before the outage outliving its
        # few seconds' cache (no generation changes without the database)
        assert probe.plain(crl_url).content == crl_before.content
        outage = time.monotonic() - down_at

        # ---- PostgreSQL back: everything answers again without a restart
        phase[0] = "pg_ctl start"  # answers come back while it waits for the server to accept connections
        took_up = cluster.start()
        phase[0] = "after"

        def recovered() -> bool:
            ok = all(probe.plain(base + "/readyz").status_code == 200
                     for base in (combined.base, standalone.base))
            for _, base in probe.ocsp_bases():
                ok = ok and ocsp_status(probe.get(base, warm[2])) == "good"
                ok = ok and ocsp_status(probe.get(base, cold[3])) == "good"
            ok = ok and local(cold[3]).status == 200
            return ok and probe.admin("GET", "/cas").status_code == 200

        recovery = _wait_until(recovered, RECOVERY_BOUND)

        # ---- a revocation made after recovery is answered revoked, by both servers, at once
        target = warm[3]
        resp = probe.admin("POST", f"/certificates/{target.kind}/{target.serial}/revoke",
                           json={"reason": "keyCompromise"})
        assert resp.status_code == 200, resp.text
        for name, base in probe.ocsp_bases():
            assert ocsp_status(probe.get(base, target)) == "revoked", name
            assert ocsp_status(probe.post(base, target, nonce=os.urandom(16))) == "revoked", name
        assert local(target).ocsp.certificate_status.name == "REVOKED"  # the epoch file moved
        time.sleep(0.3)
    finally:
        stop.set()
        loader.join(timeout=30)

    # ---- never a 500, from any path, to any request of the test or the load
    assert not [k for k in probe.statuses if k[1] >= 500 and k[1] != 503], probe.statuses
    assert not [k for k in seen if (k[2] >= 500 and k[2] != 503) or k[1] == "error"], seen
    assert {k[3] for k in seen if k[1] == "ocsp" and k[2] == 503} <= {"try_later"}, seen
    assert seen[("outage, within the grace", "ocsp", 200, "good")], seen  # warmed, served from memory
    assert not seen[("outage, past the grace", "ocsp", 200, "good")], seen  # bounded by the grace
    assert seen[("outage, past the grace", "ocsp", 503, "try_later")], seen
    # ---- one outage logged once per process (and its end), never a traceback per request
    for srv in (combined, standalone):
        log = srv.log.read_text()
        assert "Traceback" not in log, log[-3000:]
        assert log.count("the database is unreachable (") == 1, log[-3000:]
        assert log.count("the database is reachable again") == 1, log[-3000:]
    print(f"\noutage: pg_ctl stop {took_down:.2f} s, checks within the grace took {within_grace:.2f} s, down "
          f"{outage:.1f} s (grace {GRACE} s), pg_ctl start "
          f"{took_up:.2f} s; recovered {recovery:.3f} s after PostgreSQL accepted connections; "
          f"load answers by phase: {dict(sorted(seen.items()))}")
