"""Operator entry points: the admin API blueprint, ``jpki-mock crl ...`` and the schedule."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from jpki_mock.app import create_admin_app
from jpki_mock.cli import main
from jpki_mock.crl import schedule
from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream
from tests.support.cli_env import env_for
from tests.support.crl import entries


@pytest.fixture
def admin(rt):
    app = create_admin_app(rt)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {rt.token}"}
    return lambda method, path, **kw: client.open(f"/admin/api{path}", method=method, headers=headers, **kw)


def test_admin_publish_list_and_archive(rt, admin, issue):
    cert = issue("13101", "auth")["auth"]
    rt.authority.revoke("auth", cert.serial, "superseded")
    resp = admin("POST", "/crl/publish", json={"ca": "auth-g1", "partition": "13101"})
    assert resp.status_code == 201
    (item,) = resp.get_json()["published"]
    assert item["stream"] == "auth-g1/13101" and item["number"] == 1 and item["entries"] == 1
    assert item["url"].endswith("/crl/auth/g1/13101.crl")
    admin("POST", "/crl/publish", json={"ca": "auth-g1", "partition": "13101"})
    streams = {s["stream"]: s for s in admin("GET", "/crl/streams").get_json()}
    assert streams["auth-g1/13101"]["number"] == 2 and streams["sign-g1/full"]["number"] is None
    archive = admin("GET", "/crl/streams/auth/g1/13101").get_json()
    assert [c["number"] for c in archive["crls"]] == [1, 2]
    assert archive["crls"][0]["url"].endswith("/crl/auth/g1/13101.crl?number=1")


@pytest.mark.parametrize("body, status, message", [
    ({"partition": "99999"}, 400, "'99999' is not a CRL partition"),
    ({"ca": "sign-g5"}, 404, "no sign CA generation 5"),
    ({"ca": "root"}, 400, "'root' is not an issuer"),
    ({"ca": 3}, 400, "must be a string"),
    ({"delta": "yes"}, 400, "must be true or false"),
    ({"delta": True}, 400, "delta CRLs are not enabled"),
    ({"colour": "red"}, 400, "unknown field(s) ['colour']"),
])
def test_admin_publish_bad_input(admin, body, status, message):
    resp = admin("POST", "/crl/publish", json=body)
    assert resp.status_code == status
    assert message in resp.get_json()["message"]


def test_admin_requires_token(rt):
    client = create_admin_app(rt).test_client()
    assert client.post("/admin/api/crl/publish", json={}).status_code == 401


@pytest.fixture
def cli(rt, config):
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), env=env_for(config), catch_exceptions=False)


def test_cli_publish_list_show(rt, cli, issue):
    cert = issue("27100", "sign")["sign"]
    rt.authority.revoke("sign", cert.serial, "certificateHold")
    out = cli("crl", "publish", "--ca", "sign", "--partition", "27100")
    assert out.exit_code == 0, out.output
    assert "sign-g1/27100" in out.output and "number 1" in out.output
    listing = json.loads(cli("crl", "list", "--ca", "sign-g1", "--json").output)
    assert {r["stream"]: r["number"] for r in listing}["sign-g1/27100"] == 1
    shown = json.loads(cli("crl", "show", "--ca", "sign-g1", "--partition", "27100").output)
    assert shown["entries"] == 1
    assert shown["extensions"]["CRLNumber"] == 1
    assert shown["extensions"]["IssuingDistributionPoint"]["names"][1].endswith("/crl/sign/g1/27100.crl")
    assert shown["extensions"]["AuthorityKeyIdentifier"] == rt.authority.issuer("sign").ski.hex(":")
    assert shown["first_entries"] == [{"serial": cert.serial, "revoked_at": shown["first_entries"][0]["revoked_at"],
                                       "reason": "certificateHold", "hold_instruction": "1.2.840.10040.2.3"}]
    der = CliRunner().invoke(main, ["crl", "show", "--ca", "sign-g1", "--partition", "27100", "--der"],
                             env=env_for(rt.config))
    assert entries(der.stdout_bytes) == {cert.serial: "certificate_hold"}


@pytest.mark.parametrize("args, code, message", [
    (["crl", "publish", "--partition", "abc"], 2, "'abc' is not a CRL partition"),
    (["crl", "publish", "--ca", "auth-g4"], 3, "no auth CA generation 4"),
    (["crl", "show", "--ca", "root-g1"], 2, "'root-g1' is not an issuer"),
    (["crl", "show", "--ca", "sign-g3"], 3, "no sign CA generation 3"),
    (["crl", "show", "--ca", "sign-g1", "--partition", "13101"], 3, "sign-g1/13101 has not been published yet"),
    (["crl", "publish", "--delta"], 2, "delta CRLs are not enabled"),
    # cRLNumber is a positive integer (RFC 5280 section 5.2.3): 0 or less never names a CRL.
    (["crl", "show", "--ca", "sign-g1", "--number", "0"], 2, "x>=1"),
    (["crl", "show", "--ca", "sign-g1", "--number", "9"], 3, "sign-g1/full has no archived CRL number 9"),
])
def test_cli_bad_input(cli, args, code, message):
    out = cli(*args)
    assert out.exit_code == code
    assert message in out.output


def test_schedule_publishes_everything_at_start_then_what_is_due(rt, clock, issue):
    issue("13101")  # the partitions in use: 13101 for each kind, beside full and arl
    stop = schedule.start(CrlDeps.of(rt))
    try:
        pub = Publisher(CrlDeps.of(rt))
        full = Stream(rt.authority.issuer("sign"), "full")
        assert pub.latest(full).number == 1
        assert all(pub.latest(s) is not None for s in pub.streams())
        assert schedule.run_once(pub) == 0  # nothing is due yet
        clock.advance(seconds=rt.config.crl.period_seconds)
        assert schedule.run_once(pub) == len(pub.streams()) == 6
        assert pub.latest(full).number == 2
        assert pub.latest(full).next_update == clock.now() + timedelta(
            seconds=rt.config.crl.period_seconds + rt.config.crl.grace_seconds)
    finally:
        stop()


def test_schedule_can_be_turned_off(config, clock):
    from jpki_mock.config import CrlConfig
    from jpki_mock.runtime import Runtime

    runtime = Runtime.open(config.replace(crl=CrlConfig(schedule=False)), clock)
    runtime.authority.init()
    try:
        schedule.start(CrlDeps.of(runtime))()
        assert Publisher(CrlDeps.of(runtime)).latest(Stream(runtime.authority.issuer("sign"), "full")) is None
    finally:
        runtime.close()


def test_tick_follows_the_shortest_period(rt):
    assert schedule.tick_seconds(rt.config.crl) == 60.0
    from jpki_mock.config import CrlConfig
    rt.config = rt.config.replace(crl=CrlConfig(period_seconds=2))
    assert schedule.tick_seconds(rt.config.crl) == 0.5
