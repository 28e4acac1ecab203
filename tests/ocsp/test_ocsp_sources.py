"""The chain of sources (ocsp/source.py) asked directly, with an explicit request context."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asn1crypto import ocsp as a_ocsp

from jpki_mock.ocsp.answer import Context, Unauthorized
from jpki_mock.ocsp.request import MalformedRequest, parse_request
from tests.support.ocsp import T0, cert_id, multi_request, request_der


def _single(der_bytes: bytes):
    basic = a_ocsp.OCSPResponse.load(der_bytes)["response_bytes"]["response"].parsed
    return basic["tbs_response_data"], basic["tbs_response_data"]["responses"][0]


def test_answers_at_the_contexts_time(app, items, ort):
    """The request time comes from the context (as a time-travelled request's would), not from
    the clock; a pinned context's answer is not kept, an unpinned one's is."""
    chain = app.chain
    req = parse_request(request_der(items[0]))
    later = T0 + timedelta(days=10)
    answer = chain.source.answer(req, Context(later.timestamp(), None, "/pinned", pinned=True))
    data, single = _single(answer.der)
    assert data["produced_at"].native == later
    assert single["this_update"].native == later - timedelta(seconds=ort.config.ocsp.backdate_seconds)
    assert single["cert_status"].name == "good"
    assert answer.entry is None and chain.stats()["presigned"] == 0

    now = ort.clock.now()
    kept = chain.source.answer(req, Context(now.timestamp(), None, "/raw"))
    assert _single(kept.der)[0]["produced_at"].native == now
    stats = chain.stats()
    assert kept.entry is not None and stats["presigned"] == 1 and stats["request_keys"] == 1
    assert chain.presigned.hit("/raw") is kept.entry
    # the same CertID again: the kept bytes, linked to the new request bytes too
    again = chain.source.answer(req, Context(now.timestamp() + 5, None, "/other"))
    assert again.der == kept.der and chain.presigned.hit("/other") is kept.entry


def test_filter_refuses_before_anything_is_signed(make_app, items, ort):
    app = make_app(nonce_policy="require")
    source = app.chain.source
    at = ort.clock.now().timestamp()
    with pytest.raises(MalformedRequest):
        source.answer(parse_request(request_der(items[0])), Context(at))
    foreign = multi_request([cert_id(items[0].cert, 1)], nonce=b"n" * 16)  # issuer: a holder certificate
    with pytest.raises(Unauthorized) as refused:
        source.answer(parse_request(foreign), Context(at))
    assert refused.value.kind == "-"
    mixed = multi_request([cert_id(items[0].issuer, items[0].serial), cert_id(items[1].issuer, items[1].serial)],
                          nonce=b"m" * 16)
    with pytest.raises(Unauthorized) as refused:
        source.answer(parse_request(mixed), Context(at))
    assert refused.value.kind == items[1].kind
    assert app.chain.stats()["presigned"] == 0


def test_access_control_needs_a_party_allowed_the_kind(make_app, items, ort):
    app = make_app(access_control=True)
    with pytest.raises(Unauthorized) as refused:
        app.chain.source.answer(parse_request(request_der(items[1])), Context(ort.clock.now().timestamp()))
    assert refused.value.kind == items[1].kind
