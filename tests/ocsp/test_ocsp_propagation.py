"""Removing a relying party, revoking an admin token and revoking a certificate reach every
process at once (jpki_mock.epoch): the epoch file between processes of one host, PostgreSQL's
LISTEN/NOTIFY (and a slow poll) between hosts."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
import requests
from asn1crypto import ocsp as a_ocsp

from jpki_mock.access import AccessControl
from jpki_mock.ca.status import REVOCATION_SEQ
from jpki_mock.clock import SystemClock
from jpki_mock.db import libpq_url
from jpki_mock.epoch import ACCESS_CHANNEL, REVOCATION_CHANNEL, SequenceListener, listener_for
from jpki_mock.epoch import REVOCATION_SEQ as KERNEL_REVOCATION_SEQ
from jpki_mock.errors import Unauthorized
from tests.support import Server, fresh_pg_database, open_runtime
from tests.support.ocsp import get_path, issue, request_der


def status_of(body: bytes) -> str:
    """The OCSP answer parsed by asn1crypto: the response status, or the certificate status."""
    resp = a_ocsp.OCSPResponse.load(body)
    if resp["response_status"].native != "successful":
        return resp["response_status"].native
    single = resp["response_bytes"]["response"].parsed["tbs_response_data"]["responses"][0]
    return single["cert_status"].name


def ask(base: str, path: str, credential: str) -> str:
    # a new connection per request: granian's workers take turns accepting them
    with requests.Session() as s:
        r = s.get(base + path, headers={"Authorization": f"Bearer {credential}"}, timeout=10)
    return status_of(r.content)


def responder(data_dir: Path, env: dict[str, str]) -> Server:
    srv = Server(data_dir, {"JPKI_MOCK_OCSP_ACCESS_CONTROL": "true", **env}, workers=2, args=["ocsp", "serve"])
    srv.env["JPKI_MOCK_OCSP_PORT"] = str(srv.port)
    return srv


def prepare(data_dir: Path, **config) -> tuple[str, str]:
    """An initialised CA in ``data_dir``: a certificate's GET path and a relying party's credential."""
    rt = open_runtime(data_dir, SystemClock(), **config)
    try:
        item = issue(rt, "sign")[0]
        credential = rt.registry.add_relying_party("rp-gone", "both")[1]
    finally:
        rt.close()
    return get_path(request_der(item)), credential


def removal_takes_effect_at_once(srv: Server, remover: Server, path: str, credential: str) -> None:
    srv.start()
    try:
        # warm both workers' credential caches (and the pre-signed answer)
        assert {ask(srv.base, path, credential) for _ in range(16)} == {"good"}
        out = remover.cli("rp", "remove", "rp-gone")
        assert out.returncode == 0, out.stderr
        # the very next requests, whichever worker takes them
        assert [ask(srv.base, path, credential) for _ in range(16)] == ["unauthorized"] * 16
    finally:
        srv.stop()


def test_removed_relying_party_is_refused_at_once_by_another_process(tmp_path):
    data = tmp_path / "data"
    path, credential = prepare(data)
    srv = responder(data, {})
    removal_takes_effect_at_once(srv, srv, path, credential)


def test_removed_relying_party_is_refused_at_once_across_hosts_on_postgresql(tmp_path):
    """Separate data directories (no shared epoch file): the responder learns of the removal
    from PostgreSQL's notification."""
    url = fresh_pg_database()
    path, credential = prepare(tmp_path / "revoker", database_url=url)
    env = {"JPKI_MOCK_DATABASE_URL": url, "JPKI_MOCK_OCSP_REVOCATION_CHECK": "database"}
    srv = responder(tmp_path / "responder", env)
    remover = responder(tmp_path / "revoker", env)
    removal_takes_effect_at_once(srv, remover, path, credential)


@pytest.mark.parametrize("shared_data_dir", [True, False])
def test_access_control_cache_follows_removals_in_process(db_config, tmp_path, shared_data_dir):
    """Two runtimes as two processes: one caches a lookup, the other removes the party."""
    a = open_runtime(db_config.data_dir, database_url=db_config.database_url)
    # the same database (SQLite's file too), in the same or another data directory
    b = open_runtime(db_config.data_dir if shared_data_dir else tmp_path / "other", init=False,
                     database_url=a.config.db_url)
    try:
        credential = a.registry.add_relying_party("rp-x", "sign")[1]
        control = AccessControl(b.store, ttl=3600)
        if shared_data_dir:
            control = AccessControl(b.store, ttl=3600, changes=b.epoch.access_cell())
        assert control.party(credential).name == "rp-x"
        a.registry.remove_relying_party("rp-x")
        deadline = time.monotonic() + 0.5  # across hosts: the notification's delivery
        while control.party(credential) is not None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert control.party(credential) is None
    finally:
        a.close()
        b.close()


def test_revoked_admin_token_is_refused_at_once(db_rt):
    token = db_rt.registry.create_token("ops")
    db_rt.registry.check_token(token)
    assert db_rt.registry.revoke_token("ops") == 1
    with pytest.raises(Unauthorized):
        db_rt.registry.check_token(token)


def test_the_kernel_names_the_revocation_counter_as_its_owner():
    assert KERNEL_REVOCATION_SEQ == REVOCATION_SEQ


def test_listener_is_pushed_revocations_and_survives_a_lost_connection(tmp_path):
    url = fresh_pg_database()
    rt = open_runtime(tmp_path / "data", database_url=url)
    listener = SequenceListener(rt.store, {REVOCATION_CHANNEL: REVOCATION_SEQ, ACCESS_CHANNEL: "access_seq"},
                                poll_seconds=3600)  # no safety-net poll: only notifications move it
    try:
        assert listener.connected.wait(10)
        cell = listener.cell(REVOCATION_CHANNEL)
        item = issue(rt, "sign", n=2)
        rt.authority.revoke("sign-g1", item[0].serial, "keyCompromise")
        seq = rt.status.current_seq()
        deadline = time.monotonic() + 1
        while cell[0] != seq and time.monotonic() < deadline:
            time.sleep(0.001)
        assert cell[0] == seq and listener.notifications >= 1
        # the database drops the listener's connection: it reconnects and polls on the way back
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = 'jpki-sequence-listener'")
        deadline = time.monotonic() + 5
        while listener.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        rt.authority.revoke("sign-g1", item[1].serial, "keyCompromise")
        seq = rt.status.current_seq()
        deadline = time.monotonic() + 10
        while cell[0] != seq and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cell[0] == seq and listener.connected.is_set()
    finally:
        listener.close()
        rt.close()


def test_one_listener_per_process_and_database(tmp_path):
    url = fresh_pg_database()
    rt = open_runtime(tmp_path / "data", database_url=url)
    try:
        assert listener_for(rt.store) is listener_for(rt.store)
    finally:
        rt.close()
