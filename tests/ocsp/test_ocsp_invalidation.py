"""Revocation invalidates: once a revoke call has returned, no responder answers "good".

In one process with concurrent threads, and across responder processes: two `ocsp serve`
instances (two workers each) sharing PostgreSQL and the data directory's epoch file, plus
one on another data directory (as on another host) that reads the database's revocation
sequence per request instead (``database``: the strict check across hosts; the pushed
``database-push`` check is measured by ``make bench-propagation``, docs/ocsp.md "Propagation").
"""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.x509 import ocsp

from jpki_mock.config import load_config
from jpki_mock.runtime import Runtime
from tests.support.ocsp import PASSPHRASE, call, fresh_pg_database, get_path, issue, request_der, start_responder

GOOD = ocsp.OCSPCertStatus.GOOD
REVOKED = ocsp.OCSPCertStatus.REVOKED


def _hammer(ask, stop: threading.Event, log: list) -> None:
    while not stop.is_set():
        sent = time.monotonic()
        try:
            status = ask()
        except Exception as exc:
            status = repr(exc)
        log.append((sent, status))


def _wait(logs: list[list], ready, timeout: float = 60.0) -> None:
    """Until ``ready(log)`` holds for every client's log (a loaded machine is slow, not wrong)."""
    deadline = time.monotonic() + timeout
    while not all(ready(log) for log in logs):
        assert time.monotonic() < deadline, [log[-3:] for log in logs]
        time.sleep(0.05)


def _revoke_while_hammering(askers: list, revoke) -> None:
    """One client thread per asker; revoke once every client saw "good"; check the answers."""
    stop = threading.Event()
    logs = [[] for _ in askers]
    threads = [threading.Thread(target=_hammer, args=(ask, stop, log)) for ask, log in zip(askers, logs, strict=True)]
    for t in threads:
        t.start()
    try:
        _wait(logs, lambda log: sum(1 for _, s in log if s == GOOD) >= 3)
        revoke()
        revoked_at = time.monotonic()
        _wait(logs, lambda log: sum(1 for t, _ in log if t > revoked_at) >= 3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    _check(logs, revoked_at)


def _check(logs: list[list], revoked_at: float) -> None:
    for log in logs:
        before = [s for t, s in log if t < revoked_at]
        after = [s for t, s in log if t > revoked_at]
        assert GOOD in before, "the cache was not warm before the revocation"
        assert after, "no request was sent after the revocation returned"
        assert GOOD not in after, f"{after.count(GOOD)} good answers after the revoke returned"
        assert set(before + after) <= {GOOD, REVOKED}, set(before + after)
        assert after[-1] == REVOKED


def test_concurrent_threads_in_one_process(app, ort, items):
    item = items[1]
    path = get_path(request_der(item))

    def ask():
        return call(app, "GET", path).ocsp.certificate_status

    _revoke_while_hammering([ask] * 4, lambda: ort.authority.revoke("auth", item.serial, "keyCompromise"))


@pytest.mark.server
@pytest.mark.postgres
def test_several_responder_processes_sharing_postgresql(tmp_path):
    import requests

    pg = fresh_pg_database()
    env = {"JPKI_MOCK_DATABASE_URL": pg}
    first = start_responder(tmp_path / "a", env)
    second = start_responder(tmp_path / "a", env, init=False)  # same host, same epoch file
    elsewhere = start_responder(tmp_path / "b", {**env, "JPKI_MOCK_OCSP_REVOCATION_CHECK": "database"},
                                init=False)
    servers = [first, second, elsewhere]
    rt = Runtime.open(load_config({}, data_dir=tmp_path / "a", key_passphrase=PASSPHRASE, database_url=pg))
    try:
        item = issue(rt)[0]
        path = get_path(request_der(item))

        def asker(base):
            session = requests.Session()

            def ask():
                return ocsp.load_der_ocsp_response(session.get(base + path, timeout=10).content).certificate_status

            return ask

        askers = [asker(srv.base) for srv in servers * 2]
        _revoke_while_hammering(askers, lambda: rt.authority.revoke("sign", item.serial, "keyCompromise"))
    finally:
        rt.close()
        for srv in servers:
            srv.stop()
