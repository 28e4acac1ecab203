"""thisUpdate backdating (crl.backdate_seconds): as OCSP's, but never before a listed revocationDate.

Every CRL is parsed back with asn1crypto."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jpki_mock.config import CrlConfig, load_config
from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream
from jpki_mock.errors import ConfigError
from jpki_mock.runtime import Runtime
from tests.support.crl import parse


def _times(data: bytes):
    tbs = parse(data)["tbs_cert_list"]
    dates = [rc["revocation_date"].native for rc in tbs["revoked_certificates"]]
    return tbs["this_update"].native, tbs["next_update"].native, dates


def _publish(rt, scope="13101", kind="sign", delta=False):
    pub = Publisher(CrlDeps.of(rt))
    stream = Stream(rt.authority.issuer(kind), scope, delta)
    rec = pub.publish(stream)
    return rec, pub.current_file(stream).read_bytes()


@pytest.fixture
def runtime_with(config, clock):
    opened = []

    def make(**crl):
        data_dir = config.data_dir.parent / f"data-{len(opened)}"
        runtime = Runtime.open(config.replace(data_dir=data_dir, crl=CrlConfig(**crl)), clock)
        runtime.authority.init()
        opened.append(runtime)
        return runtime
    yield make
    for runtime in opened:
        runtime.close()


def test_backdated_by_the_ocsp_default(rt, issue, clock):
    assert rt.config.crl.backdate_seconds == rt.config.ocsp.backdate_seconds == 300
    cert = issue("13101", "sign")["sign"]
    rt.authority.revoke("sign", cert.serial, "keyCompromise")
    clock.advance(hours=1)
    now = clock.now()
    rec, data = _publish(rt)
    this_update, next_update, dates = _times(data)
    assert this_update == now - timedelta(seconds=300) == rec.this_update
    # nextUpdate counts from the issue time: backdating does not shorten the CRL's life.
    assert next_update == now + timedelta(seconds=rt.config.crl.period_seconds + rt.config.crl.grace_seconds)
    assert dates and max(dates) <= this_update


def test_never_before_the_latest_revocation_listed(rt, issue, clock):
    old, recent = issue("13101", "sign")["sign"], issue("13101", "sign")["sign"]
    rt.authority.revoke("sign", old.serial, "keyCompromise")
    clock.advance(minutes=30)
    revoked = rt.authority.revoke("sign", recent.serial, "affiliationChanged").revoked_at
    clock.advance(seconds=60)  # published 60 s after the revocation: a 300 s backdate would precede it
    now = clock.now()
    rec, data = _publish(rt)
    this_update, _, dates = _times(data)
    assert this_update == revoked == now - timedelta(seconds=60) == rec.this_update
    assert max(dates) == this_update and len(dates) == 2

    # The full CRL and the other kind's partition list nothing that recent: fully backdated.
    assert _times(_publish(rt, "full")[1])[0] == this_update  # the full CRL lists it too
    assert _times(_publish(rt, "27100")[1])[0] == now - timedelta(seconds=300)


def test_a_revocation_after_the_issue_time_does_not_make_the_crl_future_dated(rt, issue, clock):
    """A revocation recorded at a later clock (time travel) leaves thisUpdate at the issue time."""
    cert = issue("13101", "auth")["auth"]
    clock.advance(hours=2)
    rt.authority.revoke("auth", cert.serial, "keyCompromise")
    clock.advance(hours=-1)
    now = clock.now()
    _, data = _publish(rt, kind="auth")
    this_update, _, dates = _times(data)
    assert this_update == now and dates == [now + timedelta(hours=1)]


def test_backdate_is_configurable(runtime_with, issue, clock):
    rt = runtime_with(backdate_seconds=0)
    assert _times(_publish(rt)[1])[0] == clock.now()
    rt = runtime_with(backdate_seconds=3600)
    assert _times(_publish(rt, "arl")[1])[0] == clock.now() - timedelta(hours=1)


def test_delta_crls_follow_the_same_rule(runtime_with, issue, clock):
    rt = runtime_with(delta=True)
    _publish(rt, "full")
    clock.advance(minutes=10)
    cert = issue("13101", "sign", runtime=rt)["sign"]
    revoked = rt.authority.revoke("sign", cert.serial, "keyCompromise").revoked_at
    clock.advance(seconds=5)
    _, data = _publish(rt, "full", delta=True)
    assert _times(data)[0] == revoked == clock.now() - timedelta(seconds=5)
    clock.advance(minutes=10)
    _, data = _publish(rt, "full", delta=True)
    this_update, _, dates = _times(data)
    assert this_update == clock.now() - timedelta(seconds=300) and dates == [revoked]


def test_the_schedule_counts_periods_from_the_issue_time(rt, clock):
    """Backdating must not make each scheduled CRL come backdate_seconds earlier than the last."""
    pub = Publisher(CrlDeps.of(rt))
    stream = Stream(rt.authority.issuer("sign"), "full")
    issued = clock.now()
    pub.publish(stream)
    period = timedelta(seconds=rt.config.crl.period_seconds)
    assert not pub.due(stream, issued + period - timedelta(seconds=1))
    assert pub.due(stream, issued + period)


def test_negative_backdate_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"crl\.backdate_seconds"):
        load_config({"JPKI_MOCK_CRL_BACKDATE_SECONDS": "-1"}, data_dir=tmp_path)


def test_time_travel_serves_a_crl_only_from_its_issue_time(config, clock, issue):
    """X-JPKI-Mock-Time picks the CRL published by then: a backdated thisUpdate does not make a CRL
    appear before it was issued."""
    from cryptography import x509
    from werkzeug.test import Client

    from jpki_mock import travel
    from jpki_mock.crl.http import make_app

    runtime = Runtime.open(config.replace(time_travel=True), clock)
    try:
        runtime.authority.init()
        pub = Publisher(CrlDeps.of(runtime))
        stream = Stream(runtime.authority.issuer("sign"), "full")
        first = clock.now()
        pub.publish(stream)
        clock.advance(hours=1)
        pub.publish(stream)
        client = Client(make_app(CrlDeps.of(runtime)))

        def number_at(when):
            r = client.get("/sign/g1/full.crl", headers={travel.HEADER: when.isoformat()})
            if r.status_code != 200:
                return r.status_code
            crl = x509.load_der_x509_crl(r.get_data())
            return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number

        assert number_at(first - timedelta(seconds=1)) == 404  # inside number 1's backdated window: not issued yet
        assert number_at(first) == 1
        assert number_at(clock.now() - timedelta(seconds=1)) == 1  # number 2's thisUpdate has passed, its issue not
        assert number_at(clock.now()) == 2
    finally:
        runtime.close()
