"""Time order in answers (issue 16 point 9): thisUpdate is backdated by ocsp.backdate_seconds,
but a revoked SingleResponse's thisUpdate is never before its revocationTime (RFC 6960 section
2.4: the status is known to be correct at thisUpdate) and never after the request time; HTTP
Last-Modified is the answer's thisUpdate (RFC 5019 section 6.2).  The policy of CRLs'
thisUpdate (crl.backdate_seconds).  Parsed back with asn1crypto."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from tests.support.ocsp import call, cert_id, get_path, issue, multi_request, request_der


def singles(resp) -> list:
    """The SingleResponses of a successful answer, as asn1crypto parsed them."""
    assert resp.asn1["response_status"].native == "successful"
    return list(resp.asn1.basic_ocsp_response["tbs_response_data"]["responses"])


def last_modified(resp) -> datetime:
    return parsedate_to_datetime(resp.headers["Last-Modified"])


def test_revoked_ten_seconds_ago_this_update_not_before_revocation(app, items, ort):
    item, good = items[0], items[1]
    revoked_at = ort.clock.now()
    ort.authority.revoke(item.kind, item.serial, "keyCompromise")
    ort.clock.advance(seconds=10)
    now = ort.clock.now()
    for method in ("GET", "POST"):
        resp = call(app, method, get_path(request_der(item)) if method == "GET" else "/", request_der(item))
        (single,) = singles(resp)
        assert single["cert_status"].name == "revoked"
        revocation_time = single["cert_status"].chosen["revocation_time"].native
        this_update = single["this_update"].native
        assert revocation_time == revoked_at
        assert revocation_time <= this_update <= now
        assert this_update == revoked_at  # as much backdating as the revocation allows
        # nextUpdate still counts from the backdated time: the answer lives no longer for it
        assert single["next_update"].native == now - timedelta(seconds=ort.config.ocsp.backdate_seconds) \
            + timedelta(seconds=ort.config.ocsp.validity_seconds)
        if method == "GET":
            assert last_modified(resp) == this_update
    resp = call(app, "GET", get_path(request_der(good)))
    (single,) = singles(resp)
    assert single["cert_status"].name == "good"
    assert single["this_update"].native == now - timedelta(seconds=ort.config.ocsp.backdate_seconds)
    assert last_modified(resp) == single["this_update"].native


def test_revoked_long_ago_keeps_the_backdate(app, items, ort):
    item = items[0]
    ort.authority.revoke(item.kind, item.serial, "certificateHold")
    ort.clock.advance(seconds=ort.config.ocsp.backdate_seconds + 60)
    resp = call(app, "GET", get_path(request_der(item)))
    (single,) = singles(resp)
    assert single["cert_status"].name == "revoked"
    assert single["this_update"].native == ort.clock.now() - timedelta(seconds=ort.config.ocsp.backdate_seconds)
    assert single["cert_status"].chosen["revocation_time"].native < single["this_update"].native
    assert last_modified(resp) == single["this_update"].native


def test_nonced_answer_of_a_fresh_revocation(app, items, ort):
    """A nonced request shaped like one answered before takes the hot path's short signing
    (LiveSigner.nonced): the same time order there."""
    item = items[1]
    for _ in range(2):  # the second one comes by the known shape
        assert singles(call(app, "POST", "/", request_der(item, nonce=os.urandom(16))))[0]["cert_status"].name == "good"
    ort.authority.revoke(item.kind, item.serial, "keyCompromise")
    revoked_at = ort.clock.now()
    ort.clock.advance(seconds=3)
    for _ in range(2):
        (single,) = singles(call(app, "POST", "/", request_der(item, nonce=os.urandom(16))))
        assert single["cert_status"].name == "revoked"
        assert single["this_update"].native == revoked_at == single["cert_status"].chosen["revocation_time"].native


def test_each_single_response_has_its_own_this_update(app, items, ort):
    """One BasicOCSPResponse, several SingleResponses: only the freshly revoked one leaves the
    backdated thisUpdate."""
    good = items[0]
    revoked = next(i for i in issue(ort) if i.kind == good.kind)
    ort.authority.revoke(revoked.kind, revoked.serial, "keyCompromise")
    revoked_at = ort.clock.now()
    ort.clock.advance(seconds=20)
    der = multi_request([cert_id(good.issuer, good.serial), cert_id(revoked.issuer, revoked.serial)])
    by_serial = {s["cert_id"]["serial_number"].native: s for s in singles(call(app, "POST", "/", der))}
    assert by_serial[good.serial]["cert_status"].name == "good"
    assert by_serial[good.serial]["this_update"].native == \
        ort.clock.now() - timedelta(seconds=ort.config.ocsp.backdate_seconds)
    assert by_serial[revoked.serial]["cert_status"].name == "revoked"
    assert by_serial[revoked.serial]["this_update"].native == revoked_at


@pytest.mark.parametrize("backdate", [0, 30])
def test_this_update_never_after_the_request_time(make_app, items, ort, backdate):
    """A revocation recorded at a later clock (time travel) does not move thisUpdate past now."""
    app = make_app(backdate_seconds=backdate)
    item = items[0]
    ort.clock.advance(seconds=120)
    ort.authority.revoke(item.kind, item.serial, "keyCompromise")
    ort.clock.advance(seconds=-120)
    now = ort.clock.now()
    resp = call(app, "GET", get_path(request_der(item)))
    (single,) = singles(resp)
    assert single["cert_status"].name == "revoked"
    assert single["this_update"].native == now
    assert last_modified(resp) == now
