"""Property test: thousands of mutated requests thrown at the decoder and the responder
in-process; only defined answers come back (an OCSPResponse with a defined status and the
HTTP code that goes with it), never an exception or a bare error page."""

from __future__ import annotations

import contextlib

import pytest
from asn1crypto import ocsp as a_ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki_mock.ocsp.request import MalformedRequest, parse_request
from tests.support.ocsp import call, cert_id, get_path, multi_request, request_der

EXPECTED_HTTP = {"successful": 200, "malformed_request": 400, "unauthorized": 200, "try_later": 503}


@pytest.fixture
def seeds(app, items):
    """Valid requests of every shape: single, nonced, multi-CertID, every algorithm."""
    return [request_der(items[0]), request_der(items[1], "sha256", nonce=b"n" * 16),
            multi_request([cert_id(items[0].issuer, items[0].serial, "sha384"), cert_id(items[0].issuer, 77, "sha512")],
                          nonce=b"m" * 32)]


def mutations(seed: bytes):
    """Flip, insert, delete, truncate and splice bytes of a valid request."""
    idx = st.integers(min_value=0, max_value=max(0, len(seed) - 1))
    byte = st.integers(min_value=0, max_value=255)
    flip = st.tuples(st.just("flip"), idx, byte)
    insert = st.tuples(st.just("insert"), idx, byte)
    delete = st.tuples(st.just("delete"), idx, st.just(0))
    cut = st.tuples(st.just("cut"), idx, st.just(0))
    return st.lists(st.one_of(flip, insert, delete, cut), min_size=1, max_size=4)


def apply(seed: bytes, ops) -> bytes:
    data = bytearray(seed)
    for op, at, b in ops:
        i = min(at, max(0, len(data) - 1))
        if op == "flip" and data:
            data[i] ^= b or 1
        elif op == "insert":
            data.insert(i, b)
        elif op == "delete" and data:
            del data[i]
        elif op == "cut":
            del data[i:]
    return bytes(data)


def _check(resp) -> None:
    assert resp.headers["Content-Type"] == "application/ocsp-response"
    parsed = a_ocsp.OCSPResponse.load(resp.body)
    status = parsed["response_status"].native
    assert resp.status == EXPECTED_HTTP[status], (status, resp.status)
    if status == "successful":
        basic = parsed["response_bytes"]["response"].parsed
        assert len(basic["tbs_response_data"]["responses"]) >= 1


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(min_value=0, max_value=2), data=st.data(), by_get=st.booleans())
def test_mutated_requests_get_defined_answers(app, seeds, which, data, by_get):
    seed = seeds[which]
    body = apply(seed, data.draw(mutations(seed)))
    with contextlib.suppress(MalformedRequest):  # the decoder's only way to refuse
        parse_request(body)
    # (an empty GET path is the health check, not a request)
    resp = call(app, "GET", get_path(body)) if by_get and body else call(app, "POST", "/", body)
    _check(resp)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_random_bytes_get_defined_answers(app, body):
    _check(call(app, "POST", "/", body))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(max_size=200))
def test_random_get_paths_get_defined_answers(app, path):
    resp = call(app, "GET", "/" + path)
    if resp.headers["Content-Type"].startswith("text/plain"):
        assert resp.status == 200 and path in ("", "metrics")
    else:
        _check(resp)


def _outcome(parse, body):
    from jpki_mock.der import DerError

    try:
        return parse(body)
    except (MalformedRequest, DerError):
        return "malformed"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(min_value=0, max_value=1), data=st.data())
def test_reading_from_a_shape_agrees_with_a_full_parse(items, which, data):
    """ocsp/request.py remembers the shape of nonced requests (everything but the nonce
    octets): whatever the mutation, a parse with those shapes known gives what a full parse
    of the same bytes gives."""
    from jpki_mock.ocsp import request

    seed = [request_der(items[0], nonce=b"s" * 16),
            multi_request([cert_id(items[1].issuer, 99, "sha256")], nonce=b"t" * 40)][which]
    parse_request(seed)  # its shape is now known
    body = apply(seed, data.draw(mutations(seed)))
    assert _outcome(parse_request, body) == _outcome(lambda b: request._parse(b, 100)[0], body)
