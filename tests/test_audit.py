"""The audit log (jpki_mock.audit) on SQLite and PostgreSQL: a row per admin mutation through the
API and the CLI, in the same transaction as the change; refused ones recorded with their error
and nothing else changed; read back with ``jpki-mock audit`` and ``GET /admin/api/audit``."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from jpki_mock import audit
from jpki_mock.app import create_admin_app
from jpki_mock.audit import AuditEntry
from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.cli import main
from jpki_mock.runtime import Runtime
from tests.support import HOLDER, PASSPHRASE, T0

USER = f"cli:{getpass.getuser()}"


@pytest.fixture
def client(db_rt):
    c = create_admin_app(db_rt).test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {db_rt.token}"
    return c


@pytest.fixture
def cli(db_rt, monkeypatch):
    monkeypatch.setenv("JPKI_MOCK_DATA", str(db_rt.config.data_dir))
    monkeypatch.setenv("JPKI_MOCK_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("JPKI_MOCK_DATABASE_URL", db_rt.config.database_url)
    runner = CliRunner()
    opened = []
    real_open = Runtime.open.__func__

    def tracked(cls, *a, **kw):
        opened.append(real_open(cls, *a, **kw))
        return opened[-1]

    # in-process commands leave their runtime open (a process's end closes it): close each here
    monkeypatch.setattr(Runtime, "open", classmethod(tracked))

    def run(*args, code=0):
        try:
            result = runner.invoke(main, list(args), catch_exceptions=False)
        finally:
            while opened:
                opened.pop().close()
        assert result.exit_code == code, result.output
        return result

    return run


def rows(rt) -> list[AuditEntry]:
    with rt.store.session() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all())


def count(rt, model) -> int:
    with rt.store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def issued(client) -> tuple[int, int]:
    """A holder with an auth certificate, through the API: (holder id, serial)."""
    r = client.post("/admin/api/holders", json=HOLDER)
    assert r.status_code == 201, r.json
    hid = r.json["id"]
    r = client.post(f"/admin/api/holders/{hid}/certificates", json={"kinds": "auth", "pkcs12_passphrase": "pw1234"})
    assert r.status_code == 201, r.json
    return hid, r.json[0]["serial"]


def test_api_mutations_are_recorded_with_the_token_name_and_both_times(db_rt, client):
    before = datetime.now(UTC)
    hid, serial = issued(client)
    r = client.post(f"/admin/api/certificates/auth/{serial}/revoke", json={"reason": "keyCompromise"})
    assert r.status_code == 200
    got = rows(db_rt)
    assert [(e.actor, e.action, e.target, e.result) for e in got] == [
        ("token:init", "holder.add", f"holder {hid}", "ok"),
        ("token:init", "cert.issue", f"holder {hid} auth", "ok"),
        ("token:init", "cert.revoke", f"auth/{serial} keyCompromise", "ok"),
    ]
    # the mock's clock (frozen at T0 here) and the real time, both kept
    assert all(e.at == T0 and before - timedelta(seconds=1) <= e.wall_at <= datetime.now(UTC) for e in got)


def test_reads_are_not_recorded(db_rt, client):
    assert client.get("/admin/api/cas").status_code == 200
    assert client.get("/admin/api/holders").status_code == 200
    assert rows(db_rt) == []


def test_a_refused_mutation_leaves_its_row_and_nothing_else(db_rt, client):
    hid, serial = issued(client)
    holders, certs, entries = count(db_rt, Holder), count(db_rt, Certificate), len(rows(db_rt))
    # refused by the operation (a reason JPKI does not use)
    r = client.post(f"/admin/api/certificates/auth/{serial}/revoke", json={"reason": "bogus"})
    assert r.status_code == 400
    # refused before any operation ran (an unknown field; a body that is not JSON)
    r = client.post(f"/admin/api/holders/{hid}/certificates", json={"kinds": "auth", "colour": "red"})
    assert r.status_code == 400
    r = client.post("/admin/api/holders", data=b"{not json", content_type="application/json")
    assert r.status_code == 400
    new = rows(db_rt)[entries:]
    assert [(e.action, e.target, e.result) for e in new] == [
        ("cert.revoke", f"auth/{serial} bogus", "invalid_input"),
        ("POST /holders/<holder_id>/certificates", str(hid), "invalid_input"),
        ("POST /holders", "", "invalid_input"),
    ]
    assert "'bogus' is not a JPKI revocation reason" in new[0].detail and "colour" in new[1].detail
    assert (count(db_rt, Holder), count(db_rt, Certificate)) == (holders, certs)
    with db_rt.store.session() as s:
        assert s.scalars(select(Certificate.status).where(Certificate.serial == serial)).one() == "good"


def test_a_rolled_back_change_leaves_no_ok_row(db_rt, client):
    """The row commits with the change: a change whose commit fails after its row was added
    rolls back with its row, and only the failure's row remains."""
    _hid, serial = issued(client)
    entries = len(rows(db_rt))

    def refuse(session):
        if audit._ATTACHED in session.info:  # the revocation's transaction, its row added
            raise RuntimeError("the commit failed")

    event.listen(Session, "before_commit", refuse)  # after the audit log's own listener
    try:
        r = client.post(f"/admin/api/certificates/auth/{serial}/revoke", json={"reason": "keyCompromise"})
    finally:
        event.remove(Session, "before_commit", refuse)
    assert r.status_code == 500
    new = rows(db_rt)[entries:]
    assert [(e.actor, e.action, e.result, e.detail) for e in new] == [
        ("token:init", "cert.revoke", "internal_error", "RuntimeError")]
    with db_rt.store.session() as s:
        assert s.scalars(select(Certificate.status).where(Certificate.serial == serial)).one() == "good"


def test_unauthenticated_requests_are_not_recorded(db_rt, client):
    r = client.post("/admin/api/holders", json=HOLDER, headers={"Authorization": "Bearer jpkim_wrong"})
    assert r.status_code == 401
    assert rows(db_rt) == []


def test_token_and_relying_party_changes_and_nested_operations(db_rt, client):
    hid, _serial = issued(client)
    assert client.post("/admin/api/tokens", json={"label": "ci"}).status_code == 201
    assert client.post("/admin/api/relying-parties", json={"name": "bank", "kinds": "auth"}).status_code == 201
    assert client.delete("/admin/api/relying-parties/bank").status_code == 200
    assert client.delete("/admin/api/tokens/ci").status_code == 200
    # a renewal revokes and issues: one row, the event's
    r = client.post(f"/admin/api/holders/{hid}/events", json={"event": "renewal", "kinds": "auth",
                                                               "pkcs12_passphrase": "pw1234"})
    assert r.status_code == 200, r.json
    assert [(e.action, e.target, e.result) for e in rows(db_rt)[2:]] == [
        ("token.create", "ci", "ok"), ("rp.add", "bank auth", "ok"), ("rp.remove", "bank", "ok"),
        ("token.revoke", "ci", "ok"), ("holder.renewal", f"holder {hid}", "ok")]


def test_cli_mutations_are_recorded_as_the_user(db_rt, cli, tmp_path):
    cli("holder", "add", "--name", HOLDER["name"], "--dob", "1980-12-31", "--gender", "1",
        "--address", HOLDER["address"])
    cli("cert", "issue", "--holder", "1", "--kind", "auth", "--p12-passphrase", "pw1234", "--out", str(tmp_path))
    with db_rt.store.session() as s:
        serial = s.scalars(select(Certificate.serial)).one()
    cli("cert", "revoke", "--issuer", "auth", "--serial", "999999", code=3)
    cli("cert", "revoke", "--issuer", "auth", "--serial", str(serial), "--reason", "keyCompromise")
    cli("rp", "add", "shop")
    cli("ca", "list")  # a read: no row
    got = [(e.actor, e.action, e.target, e.result) for e in rows(db_rt)]
    assert got == [
        (USER, "holder.add", "holder 1", "ok"),
        (USER, "cert.issue", "holder 1 auth", "ok"),
        (USER, "cert.revoke", "auth/999999 unspecified", "not_found"),
        (USER, "cert.revoke", f"auth/{serial} keyCompromise", "ok"),
        (USER, "rp.add", "shop both", "ok"),
    ]


def test_jpki_mock_audit_prints_filters_and_json(db_rt, cli):
    cli("rp", "add", "one")
    cli("rp", "add", "one", code=4)  # exists: refused
    cli("token", "--label", "ci")
    out = cli("audit").output.splitlines()
    assert len(out) == 3
    # real time, the mock's clock when it differs (frozen at T0 in the runtime, not in the CLI's)
    first = out[0].split(" ")
    assert datetime.fromisoformat(first[0]) > datetime.now(UTC) - timedelta(minutes=5)
    assert first[1:] == [USER, "rp.add", "one", "both", "ok"]
    assert out[1].split(" ")[1:6] == [USER, "rp.add", "one", "both", "conflict"]
    assert "a relying party named 'one' exists" in out[1]
    assert cli("audit", "--action", "token").output.count("\n") == 1
    assert cli("audit", "--action", "rp.add", "--limit", "1").output.splitlines() == out[1:2]
    assert cli("audit", "--since", "1h").output.splitlines() == out
    assert cli("audit", "--since", "2099-01-01T00:00:00Z").output == ""
    data = json.loads(cli("audit", "--json").output)
    assert [d["action"] for d in data] == ["rp.add", "rp.add", "token.create"]
    assert data[1]["result"] == "conflict" and data[1]["actor"] == USER and data[0]["clock"].endswith("Z")
    r = cli("audit", "--since", "yesterday", code=2)
    assert "--since" in r.output and "duration" in r.output
    assert "1-1000" in cli("audit", "--limit", "0", code=2).output


def test_admin_api_audit_pages_and_filters(db_rt, client):
    for name in ("a", "b", "c"):
        assert client.post("/admin/api/relying-parties", json={"name": name}).status_code == 201
    assert client.post("/admin/api/tokens", json={"label": "x"}).status_code == 201
    r = client.get("/admin/api/audit?limit=2&action=rp")
    assert r.status_code == 200
    assert [e["target"] for e in r.json["entries"]] == ["c both", "b both"]  # newest first
    r = client.get(r.json["next"])
    assert [e["target"] for e in r.json["entries"]] == ["a both"] and r.json["next"] is None
    r = client.get("/admin/api/audit?since=10m")
    assert [e["action"] for e in r.json["entries"]] == ["token.create", "rp.add", "rp.add", "rp.add"]
    assert r.json["entries"][0]["actor"] == "token:init"
    r = client.get("/admin/api/audit?limit=5000")
    assert r.status_code == 400 and r.json["field"] == "limit"
    r = client.get("/admin/api/audit?colour=red")
    assert r.status_code == 400
    r = client.get("/admin/api/audit", headers={"Authorization": "Bearer jpkim_wrong"})
    assert r.status_code == 401


def test_text_that_could_forge_a_line_is_stored_harmlessly(db_rt, client):
    r = client.post("/admin/api/certificates/auth/1%0A2026-01-01T00:00:00Z%20forged/revoke", json={})
    assert 400 <= r.status_code < 500
    (entry,) = rows(db_rt)
    assert "\n" not in entry.target and "\n" not in audit.text_line(entry)


def test_clock_moves_crl_publication_and_card_actions_are_recorded(rt_factory, db_config):
    rt = rt_factory(db_config.data_dir, database_url=db_config.database_url, time_travel=True)
    c = create_admin_app(rt).test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {rt.token}"
    hid = c.post("/admin/api/holders", json=HOLDER).json["id"]
    assert c.post("/admin/api/clock/advance", json={"by": "1d"}).status_code == 200
    assert c.post("/admin/api/crl/publish", json={"ca": "auth-g1", "partition": "full"}).status_code == 201
    assert c.post(f"/admin/api/holders/{hid}/card", json={"auth_pin": "12", "sign_password": "ABC123"}).status_code \
        == 400
    assert c.post(f"/admin/api/holders/{hid}/card", json={"auth_pin": "1234", "sign_password": "ABC123"}).status_code \
        == 201
    assert c.post("/admin/api/clock/reset").status_code == 200
    got = rows(rt)[1:]
    assert [(e.action, e.target, e.result) for e in got] == [
        ("clock.advance", "+86400s", "ok"),
        ("crl.publish", "auth-g1/full", "ok"),
        ("card.create", f"holder {hid}", "invalid_input"),
        ("card.create", f"holder {hid}", "ok"),
        ("clock.reset", "", "ok"),
    ]
    # the mock's clock as each change saw it: moved a day, then back
    assert [e.at - T0 for e in got] == [timedelta(days=1)] * 4 + [timedelta(0)]
