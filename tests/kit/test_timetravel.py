"""Time travel: off by default, refused on shared servers, shared across processes, per-request header."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from click.testing import CliRunner

from jpki_mock import travel as timetravel
from jpki_mock.app import create_admin_app
from jpki_mock.cli import main
from jpki_mock.clock import FixedClock
from jpki_mock.config import load_config
from jpki_mock.errors import ConfigError, Forbidden, InvalidInput
from jpki_mock.runtime import Runtime
from jpki_mock.travel import TravellingClock, parse_delta, parse_time
from tests.support import PASSPHRASE, ROOT, T0


@pytest.fixture
def tt_config(tmp_path):
    return load_config({"JPKI_MOCK_TIME_TRAVEL": "1"}, data_dir=tmp_path / "tt", key_passphrase=PASSPHRASE)


@pytest.fixture
def tt_rt(rt_factory, tt_config):
    return rt_factory(tt_config.data_dir, time_travel=True)


def test_disabled_by_default(rt):
    assert not isinstance(rt.clock, TravellingClock)
    with pytest.raises(Forbidden) as err:
        timetravel.travelling(rt.clock)
    assert err.value.field == "time_travel"


def test_shared_server_refuses_time_travel(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config({"JPKI_MOCK_TIME_TRAVEL": "true", "JPKI_MOCK_SHARED": "true"}, data_dir=tmp_path)
    assert err.value.field == "time_travel"
    (tmp_path / "config.toml").write_text("time_travel = true\nshared = true\n")
    with pytest.raises(ConfigError):
        load_config({}, data_dir=tmp_path)


def test_offset_moves_every_component_and_is_shared(tt_rt, tt_config):
    clock = timetravel.travelling(tt_rt.clock)
    clock.advance(parse_delta("3d"))
    assert tt_rt.clock.now() == T0 + timedelta(days=3)
    # Another process on the same data directory sees the same "now" (the offset is a file).
    other = Runtime.open(tt_config, FixedClock(T0))
    try:
        assert other.clock.now() == T0 + timedelta(days=3)
        # Issuance uses the moved clock.
        holder = tt_rt.authority.create_holder({"name": "山田\u3000花子", "date_of_birth": "1990-01-02", "gender": "2",
                                                "address": "東京都港区芝公園4-2-8"})
        issued = tt_rt.authority.issue(holder.id, "auth", pkcs12_passphrase="secret")[0]
        assert issued.certificate.not_before == T0 + timedelta(days=3)
        clock.set(parse_time("2027-01-01T09:00:00+09:00"))
        assert other.clock.now() == parse_time("2027-01-01T00:00:00Z")
        clock.reset()
        assert other.clock.now() == T0
    finally:
        other.close()


@pytest.mark.parametrize("value", ["", "3", "3x", "d", "1d-2h", None, 5])
def test_bad_durations(value):
    with pytest.raises(InvalidInput) as err:
        parse_delta(value)
    assert "3d" in err.value.allowed


@pytest.mark.parametrize("value", ["2027-01-01", "2027-01-01T00:00:00", "tomorrow", "", None])
def test_bad_times(value):
    with pytest.raises(InvalidInput) as err:
        parse_time(value)
    assert "time zone" in str(err.value)


def test_offset_is_bounded(tt_rt):
    with pytest.raises(InvalidInput):
        timetravel.travelling(tt_rt.clock).advance(timedelta(days=366 * 21))
    assert tt_rt.clock.now() == T0


def test_damaged_offset_file_means_no_travel(tt_rt, tt_config):
    timetravel.offset_path(tt_config.data_dir).write_text("{not json")
    assert tt_rt.clock.now() == T0


def clock_app(rt):
    def app(environ, start_response):
        body = rt.clock.now().isoformat().encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    return app


def call(app, headers=None):
    from werkzeug.test import Client

    return Client(app).get("/", headers=headers or {})


def test_request_header_pins_one_request(tt_rt):
    app = timetravel.wsgi(clock_app(tt_rt), tt_rt)
    r = call(app, {timetravel.HEADER: "2027-03-01T00:00:00Z"})
    assert r.status_code == 200 and r.get_data(as_text=True) == "2027-03-01T00:00:00+00:00"
    r = call(app, {timetravel.HEADER: "+2d"})
    assert r.get_data(as_text=True) == (T0 + timedelta(days=2)).isoformat()
    # Only that request: the next one without the header is back to the runtime's time.
    assert call(app).get_data(as_text=True) == T0.isoformat()
    r = call(app, {timetravel.HEADER: "next week"})
    assert r.status_code == 400 and timetravel.HEADER in r.get_data(as_text=True)
    assert timetravel.clock_for({"HTTP_X_JPKI_MOCK_TIME": "-1h"}, tt_rt).now() == T0 - timedelta(hours=1)


def test_request_header_is_ignored_when_disabled(rt):
    inner = clock_app(rt)
    assert timetravel.wsgi(inner, rt) is inner  # no wrapper, no cost on the hot path
    assert timetravel.clock_for({"HTTP_X_JPKI_MOCK_TIME": "+1d"}, rt) is rt.clock


def test_admin_api(tt_rt, rt):
    client = create_admin_app(tt_rt).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tt_rt.token}"
    r = client.post("/admin/api/clock/advance", json={"by": "1h"})
    assert r.status_code == 200 and r.json["offset_seconds"] == 3600
    r = client.post("/admin/api/clock/set", json={"at": "2028-01-01T00:00:00Z"})
    assert r.json["now"] == "2028-01-01T00:00:00Z"
    assert client.post("/admin/api/clock/set", json={"at": "soon"}).status_code == 400
    assert client.post("/admin/api/clock/advance", json={"by": "1h", "x": 1}).json["field"] == "x"
    assert client.get("/admin/api/clock").json["enabled"] is True
    r = client.post("/admin/api/clock/reset")
    assert r.json["offset_seconds"] == 0
    off = create_admin_app(rt).test_client()
    off.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {rt.token}"
    assert off.get("/admin/api/clock").json["enabled"] is False
    r = off.post("/admin/api/clock/advance", json={"by": "1h"})
    assert r.status_code == 403 and "time_travel" in r.json["allowed"]


def test_cli(tt_config, rt):
    runner = CliRunner()
    env = {"JPKI_MOCK_DATA": str(tt_config.data_dir), "JPKI_MOCK_TIME_TRAVEL": "1"}
    r = runner.invoke(main, ["clock", "advance", "2d"], env=env)
    assert r.exit_code == 0 and "offset +172800 s" in r.output
    r = runner.invoke(main, ["clock", "show"], env=env)
    assert "offset +172800 s" in r.output
    r = runner.invoke(main, ["clock", "set", "yesterday"], env=env)
    assert r.exit_code == 2 and "AT" in r.output
    r = runner.invoke(main, ["clock", "reset"], env=env)
    assert "offset +0 s" in r.output
    r = runner.invoke(main, ["clock", "advance", "2d"], env={"JPKI_MOCK_DATA": str(rt.config.data_dir)})
    assert r.exit_code == 6 and "disabled" in r.output
    assert not timetravel.offset_path(rt.config.data_dir).exists()


def test_cli_refuses_shared_server(tmp_path):
    env = {"JPKI_MOCK_DATA": str(tmp_path), "JPKI_MOCK_TIME_TRAVEL": "1", "JPKI_MOCK_SHARED": "1",
           "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "jpki_mock.cli", "clock", "advance", "1d"], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 5 and "shared" in res.stderr


def test_ocsp_header_answers_at_that_time_and_caches_nothing(tmp_path):
    """The responder signs a time-travelled request at the pinned time and never serves it to others."""
    import base64
    from datetime import datetime

    from asn1crypto import ocsp as asn1_ocsp
    from werkzeug.test import Client

    from jpki_mock.ocsp.http import make_app

    config = load_config({"JPKI_MOCK_TIME_TRAVEL": "1"}, data_dir=tmp_path / "o", key_passphrase=PASSPHRASE)
    rt = Runtime.open(config, FixedClock(T0))
    try:
        rt.authority.init()
        holder = rt.authority.create_holder({"name": "山田\u3000花子", "date_of_birth": "1990-01-02", "gender": "2",
                                             "address": "東京都港区芝公園4-2-8"})
        cert = rt.authority.issue(holder.id, "auth", pkcs12_passphrase="secret")[0]
        issuer = cert.issuer
        req = asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": {
            "hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": issuer.name_hash["sha1"],
            "issuer_key_hash": issuer.key_hash["sha1"], "serial_number": cert.certificate.serial}}]}}).dump()
        path = "/" + base64.b64encode(req).decode()
        client = Client(make_app(rt.config, rt.clock, rt.store, rt.status, rt.keyring, rt.epoch))

        def this_update(headers=None) -> datetime:
            body = client.get(path, headers=headers or {}).get_data()
            basic = asn1_ocsp.OCSPResponse.load(body)["response_bytes"]["response"].parsed
            return basic["tbs_response_data"]["responses"][0]["this_update"].native

        normal = this_update()
        assert normal <= T0
        later = this_update({timetravel.HEADER: "+10d"})
        assert later > T0 + timedelta(days=9)
        assert this_update() == normal  # the pre-signed answer is untouched
        assert client.get(path, headers={timetravel.HEADER: "someday"}).status_code == 400

        # Nonced POSTs too, also once their shape is known (ocsp.live.LiveSigner.nonced).
        def nonced_this_update(nonce: bytes, headers=None) -> datetime:
            tbs = asn1_ocsp.OCSPRequest.load(req)["tbs_request"].copy()
            tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
            body = client.post("/", data=asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump(),
                               content_type="application/ocsp-request", headers=headers or {}).get_data()
            basic = asn1_ocsp.OCSPResponse.load(body)["response_bytes"]["response"].parsed
            assert basic["tbs_response_data"]["response_extensions"][0]["extn_value"].parsed.native == nonce
            return basic["tbs_response_data"]["responses"][0]["this_update"].native

        assert nonced_this_update(b"1" * 16) <= T0
        assert nonced_this_update(b"2" * 16, {timetravel.HEADER: "+10d"}) > T0 + timedelta(days=9)
        assert nonced_this_update(b"3" * 16) <= T0
    finally:
        rt.close()


def test_crl_header_serves_the_crl_current_at_that_time(tmp_path):
    from cryptography import x509
    from werkzeug.test import Client

    from jpki_mock.crl.http import make_app
    from jpki_mock.crl.publisher import CrlDeps, Publisher

    config = load_config({"JPKI_MOCK_TIME_TRAVEL": "1"}, data_dir=tmp_path / "c", key_passphrase=PASSPHRASE)
    base = FixedClock(T0)
    rt = Runtime.open(config, base)
    try:
        rt.authority.init()
        holder = rt.authority.create_holder({"name": "山田\u3000花子", "date_of_birth": "1990-01-02", "gender": "2",
                                             "address": "東京都港区芝公園4-2-8"})
        serial = rt.authority.issue(holder.id, "sign", pkcs12_passphrase="secret")[0].certificate.serial
        publisher = Publisher(CrlDeps.of(rt))
        publisher.publish_many(publisher.select("sign", "full", None))
        base.advance(days=1)
        rt.authority.revoke("sign", serial, "keyCompromise")
        publisher.publish_many(publisher.select("sign", "full", None))
        client = Client(make_app(CrlDeps.of(rt)))

        def crl(headers=None):
            r = client.get("/sign/g1/full.crl", headers=headers or {})
            return r.status_code, (x509.load_der_x509_crl(r.get_data()) if r.status_code == 200 else r.get_json())

        status, today = crl()
        assert today.get_revoked_certificate_by_serial_number(serial) is not None
        status, yesterday = crl({timetravel.HEADER: (T0 + timedelta(hours=1)).isoformat()})
        assert status == 200 and yesterday.get_revoked_certificate_by_serial_number(serial) is None
        assert yesterday.last_update_utc == T0 - timedelta(seconds=config.crl.backdate_seconds)  # issued at T0
        status, body = crl({timetravel.HEADER: "2020-01-01T00:00:00Z"})
        assert status == 404 and body["field"] == timetravel.HEADER
    finally:
        rt.close()
