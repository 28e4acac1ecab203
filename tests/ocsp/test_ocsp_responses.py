"""Answers of the in-process responder, checked with pyca/cryptography and asn1crypto."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from cryptography.x509 import ReasonFlags, ocsp

from tests.support.ocsp import call, cert_id, get_path, issue, multi_request, request_der, verify

S = ocsp.OCSPResponseStatus


def test_good_by_get_and_post(app, items):
    for item in items:
        for resp in (call(app, "GET", get_path(request_der(item))), call(app, "POST", "/", request_der(item))):
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/ocsp-response"
            r = resp.ocsp
            assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
            assert r.serial_number == item.serial
            verify(r, item.issuer)


def test_times_backdated_and_next_update(app, items, ort):
    r = call(app, "GET", get_path(request_der(items[0]))).ocsp
    now = ort.clock.now()
    cfg = ort.config.ocsp
    assert r.this_update_utc == now - timedelta(seconds=cfg.backdate_seconds)
    assert r.next_update_utc == r.this_update_utc + timedelta(seconds=cfg.validity_seconds)
    assert r.produced_at_utc == now


@pytest.mark.parametrize("alg", ["sha1", "sha256", "sha384", "sha512"])
def test_answered_in_the_certids_algorithm(app, items, alg):
    r = call(app, "POST", "/", request_der(items[1], alg)).ocsp
    assert r.hash_algorithm.name == alg
    assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert r.issuer_key_hash == hashlib.new(alg, _key_bits(items[1].issuer)).digest()
    verify(r, items[1].issuer)


def _key_bits(cert):
    from asn1crypto import x509 as a_x509
    from cryptography.hazmat.primitives import serialization

    return a_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)).public_key["public_key"].contents[1:]


@pytest.mark.parametrize("reason", ["keyCompromise", "affiliationChanged", "cessationOfOperation", "certificateHold"])
def test_revoked_with_time_and_reason(app, items, ort, reason):
    item = items[0]
    assert call(app, "GET", get_path(request_der(item))).ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    ort.clock.advance(seconds=30)
    ort.authority.revoke("sign", item.serial, reason)
    r = call(app, "GET", get_path(request_der(item))).ocsp
    assert r.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert r.revocation_time_utc == ort.clock.now()
    expected = {"keyCompromise": ReasonFlags.key_compromise, "affiliationChanged": ReasonFlags.affiliation_changed,
                "cessationOfOperation": ReasonFlags.cessation_of_operation,
                "certificateHold": ReasonFlags.certificate_hold}[reason]
    assert r.revocation_reason == expected
    verify(r, item.issuer)


def test_hold_then_revocation_shows_the_new_reason(app, items, ort):
    item = items[1]
    ort.authority.revoke("auth", item.serial, "certificateHold")
    assert call(app, "GET", get_path(request_der(item))).ocsp.revocation_reason == ReasonFlags.certificate_hold
    ort.authority.revoke("auth", item.serial, "keyCompromise")
    assert call(app, "GET", get_path(request_der(item))).ocsp.revocation_reason == ReasonFlags.key_compromise


def test_never_issued_serial_is_unknown_by_default(app, items):
    der = multi_request([cert_id(items[0].issuer, 987654321)])
    resp = call(app, "POST", "/", der)
    assert resp.status == 200
    assert resp.ocsp.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    verify(resp.ocsp, items[0].issuer)


def test_never_issued_serial_revoked_with_extended_revoke(make_app, items):
    app = make_app(unknown_serial="revoked")
    resp = call(app, "GET", get_path(multi_request([cert_id(items[0].issuer, 987654321)])))
    r = resp.ocsp
    assert r.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert r.revocation_reason == ReasonFlags.certificate_hold
    assert r.revocation_time_utc.year == 1970  # RFC 6960 section 2.2
    basic = resp.asn1["response_bytes"]["response"].parsed
    ext = [e["extn_id"].dotted for e in basic["tbs_response_data"]["response_extensions"]]
    assert "1.3.6.1.5.5.7.48.1.9" in ext  # Extended Revoked Definition, section 4.4.8
    verify(r, items[0].issuer)


def test_never_issued_answer_is_not_cached_so_a_later_issue_shows_good(app, ort, items):
    from jpki_mock.ca.serials import SERIAL_START, SERIALS
    from jpki_mock.db import next_values
    from tests.support.ocsp import HOLDER, PUBLIC_PEM

    with ort.store.session() as s:  # the next serial the auth CA will hand out
        upcoming = next_values(s, SERIALS["auth"], start=SERIAL_START) + 1
    der = multi_request([cert_id(items[1].issuer, upcoming)])
    assert call(app, "GET", get_path(der)).ocsp.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    holder = ort.authority.create_holder({**HOLDER, "name": "佐藤\u3000花子"})
    issued = ort.authority.issue(holder.id, "auth", public_key=PUBLIC_PEM)[0]
    assert issued.certificate.serial == upcoming
    assert call(app, "GET", get_path(der)).ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_unknown_issuer_is_unauthorized(app, items):
    c = cert_id(items[0].issuer, items[0].serial)
    c["issuer_key_hash"] = b"\x01" * 20
    resp = call(app, "POST", "/", multi_request([c]))
    assert resp.status == 200
    assert resp.ocsp.response_status == S.UNAUTHORIZED


def test_unsupported_hash_algorithm_is_unauthorized(app, items):
    from asn1crypto import algos

    c = cert_id(items[0].issuer, items[0].serial)
    c["hash_algorithm"] = algos.DigestAlgorithm({"algorithm": "md5"})
    c["issuer_name_hash"] = b"\x00" * 16
    c["issuer_key_hash"] = b"\x00" * 16
    resp = call(app, "POST", "/", multi_request([c]))
    assert resp.ocsp.response_status == S.UNAUTHORIZED


def test_every_certid_answered_in_order(app, ort, items):
    more = issue(ort, "sign", n=2)
    ort.authority.revoke("sign", more[1].serial, "keyCompromise")
    ids = [cert_id(items[0].issuer, items[0].serial, "sha1"), cert_id(more[0].issuer, more[0].serial, "sha256"),
           cert_id(more[1].issuer, more[1].serial, "sha384"), cert_id(items[0].issuer, 424242, "sha512")]
    resp = call(app, "POST", "/", multi_request(ids, nonce=b"n" * 16))
    r = resp.ocsp
    got = [(s.serial_number, s.hash_algorithm.name, s.certificate_status) for s in r.responses]
    good, revoked, unknown = ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.UNKNOWN
    assert got == [(items[0].serial, "sha1", good), (more[0].serial, "sha256", good),
                   (more[1].serial, "sha384", revoked), (424242, "sha512", unknown)]
    # the CertIDs come back byte for byte (asn1crypto reads the same)
    single = resp.asn1["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
    assert [s["cert_id"].dump() for s in single] == [c.dump() for c in ids]
    verify(r, items[0].issuer)


def test_more_certids_than_allowed_is_malformed(make_app, items):
    app = make_app(max_certids=3)
    ids = [cert_id(items[0].issuer, items[0].serial)] * 4
    resp = call(app, "POST", "/", multi_request(ids))
    assert resp.status == 400
    assert resp.ocsp.response_status == S.MALFORMED_REQUEST
    assert call(app, "POST", "/", multi_request(ids[:3])).ocsp.response_status == S.SUCCESSFUL


def test_certids_of_two_generations_are_unauthorized(app, items):
    ids = [cert_id(items[0].issuer, items[0].serial), cert_id(items[1].issuer, items[1].serial)]
    assert call(app, "POST", "/", multi_request(ids)).ocsp.response_status == S.UNAUTHORIZED


# ------------------------------------------------------------------ nonce (RFC 9654)
@pytest.mark.parametrize("size", [1, 16, 32, 128])
def test_nonce_echoed_exactly(app, items, size):
    nonce = bytes((i * 7) % 256 for i in range(size))
    resp = call(app, "POST", "/", request_der(items[0], nonce=nonce))
    r = resp.ocsp
    assert r.extensions.get_extension_for_class(type(_nonce_ext())).value.nonce == nonce
    assert "Cache-Control" not in resp.headers
    verify(r, items[0].issuer)


def _nonce_ext():
    from cryptography import x509

    return x509.OCSPNonce(b"x")


def test_nonced_requests_get_fresh_signatures(app, items):
    a = call(app, "POST", "/", request_der(items[0], nonce=b"a" * 16)).body
    b = call(app, "POST", "/", request_der(items[0], nonce=b"b" * 16)).body
    assert a != b


def test_nonced_answer_follows_a_revocation_within_the_same_second(app, items, ort):
    """Nonced answers share their signer and times within a second (ocsp/live.py LiveFrame),
    never a certificate's status: a revocation shows at once, on the clock's same second."""
    item = items[1]
    before = call(app, "POST", "/", request_der(item, nonce=b"1" * 16)).ocsp
    assert before.certificate_status == ocsp.OCSPCertStatus.GOOD
    ort.authority.revoke("auth", item.serial, "keyCompromise")
    after = call(app, "POST", "/", request_der(item, nonce=b"2" * 16)).ocsp
    assert after.produced_at_utc == before.produced_at_utc
    assert after.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert after.revocation_reason == ReasonFlags.key_compromise
    verify(after, item.issuer)


def test_nonced_answers_follow_the_clock(app, items, ort):
    first = call(app, "POST", "/", request_der(items[0], nonce=b"a" * 16)).ocsp
    ort.clock.advance(seconds=1)
    second = call(app, "POST", "/", request_der(items[0], nonce=b"b" * 16)).ocsp
    assert second.produced_at_utc == ort.clock.now() == first.produced_at_utc + timedelta(seconds=1)
    assert second.this_update_utc == first.this_update_utc + timedelta(seconds=1)
    assert second.next_update_utc == first.next_update_utc + timedelta(seconds=1)
    verify(second, items[0].issuer)


def test_nonced_never_issued_serial_revoked_with_extended_revoke(make_app, items):
    app = make_app(unknown_serial="revoked")
    resp = call(app, "POST", "/", multi_request([cert_id(items[0].issuer, 987654321)], nonce=b"e" * 20))
    assert resp.ocsp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    basic = resp.asn1["response_bytes"]["response"].parsed
    exts = {e["extn_id"].dotted: e["extn_value"].parsed for e in basic["tbs_response_data"]["response_extensions"]}
    assert "1.3.6.1.5.5.7.48.1.9" in exts and exts["1.3.6.1.5.5.7.48.1.2"].native == b"e" * 20
    verify(resp.ocsp, items[0].issuer)


def test_nonce_over_128_octets_is_malformed(app, items):
    resp = call(app, "POST", "/", multi_request([cert_id(items[0].issuer, items[0].serial)], nonce=b"n" * 129))
    assert resp.status == 400
    assert resp.ocsp.response_status == S.MALFORMED_REQUEST


def test_nonce_policy_ignore(make_app, items):
    app = make_app(nonce_policy="ignore")
    r = call(app, "POST", "/", request_der(items[0], nonce=b"z" * 16)).ocsp
    assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert len(r.extensions) == 0


def test_nonce_policy_require(make_app, items):
    app = make_app(nonce_policy="require")
    resp = call(app, "POST", "/", request_der(items[0]))
    assert resp.status == 400 and resp.ocsp.response_status == S.MALFORMED_REQUEST
    assert call(app, "POST", "/", request_der(items[0], nonce=b"q" * 16)).ocsp.response_status == S.SUCCESSFUL


# ------------------------------------------------------------------ caching headers (RFC 5019 / 9919)
def test_caching_headers_on_get(app, items, ort):
    path = get_path(request_der(items[1]))
    resp = call(app, "GET", path)
    r = resp.ocsp
    cfg = ort.config.ocsp
    max_age = cfg.validity_seconds - cfg.backdate_seconds
    assert resp.headers["Cache-Control"] == f"max-age={max_age}, public, no-transform, must-revalidate"
    assert resp.headers["Last-Modified"] == r.this_update_utc.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert resp.headers["Expires"] == r.next_update_utc.strftime("%a, %d %b %Y %H:%M:%S GMT")
    etag = resp.headers["ETag"]
    ort.clock.advance(seconds=100)
    again = call(app, "GET", path)
    assert again.body == resp.body  # served pre-signed
    assert again.headers["Cache-Control"].startswith(f"max-age={max_age - 100},")
    not_modified = call(app, "GET", path, headers={"If-None-Match": etag})
    assert not_modified.status == 304 and not_modified.body == b""
    assert call(app, "GET", path, headers={"If-None-Match": f'"other", W/{etag}'}).status == 304
    assert call(app, "GET", path, headers={"If-None-Match": '"other"'}).status == 200


def test_cached_headers_follow_the_second_and_stop_at_the_refresh_time(app, items, ort):
    """The hot path keeps one header list per entry and second (max-age counts down by whole
    seconds) and stops serving the entry at its refresh time, whatever the fraction of a second."""
    path = get_path(request_der(items[1]))
    first = call(app, "GET", path)
    cache_control = first.headers["Cache-Control"]
    max_age = int(cache_control.split(",")[0].removeprefix("max-age="))
    ort.clock.advance(seconds=0.5)
    assert call(app, "GET", path).headers["Cache-Control"] == cache_control
    ort.clock.advance(seconds=0.5)
    assert call(app, "GET", path).headers["Cache-Control"].startswith(f"max-age={max_age - 1},")
    cfg = ort.config.ocsp
    refresh_at = first.ocsp.produced_at_utc + timedelta(seconds=cfg.refresh_seconds)
    ort.clock.set(refresh_at - timedelta(seconds=0.25))
    last = call(app, "GET", path)
    assert last.body == first.body  # still pre-signed
    assert last.headers["Cache-Control"].startswith(f"max-age={max_age - cfg.refresh_seconds + 1},")
    ort.clock.set(refresh_at + timedelta(seconds=0.25))
    again = call(app, "GET", path).ocsp
    assert again.produced_at_utc == refresh_at  # signed afresh
    assert again.serial_number == items[1].serial and again.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_no_caching_headers_for_post_or_nonce(app, items):
    assert "Cache-Control" not in call(app, "POST", "/", request_der(items[0])).headers
    assert "Cache-Control" not in call(app, "GET", get_path(request_der(items[0], nonce=b"x" * 16))).headers


def test_stale_entry_is_resigned(app, items, ort):
    path = get_path(request_der(items[0]))
    first = call(app, "GET", path).ocsp
    ort.clock.advance(seconds=ort.config.ocsp.refresh_seconds + 1)
    second = call(app, "GET", path).ocsp
    assert second.this_update_utc > first.this_update_utc
    assert second.next_update_utc > ort.clock.now()


# ------------------------------------------------------------------ signing
def test_ca_signing_mode(make_app, items):
    app = make_app(signing="ca")
    r = call(app, "GET", get_path(request_der(items[0]))).ocsp
    assert r.certificates == []
    verify(r, items[0].issuer)


def test_rollover_generation_answered_with_its_own_responder(app, ort, items):
    issuer = ort.authority.rollover("sign")  # after the app loaded its issuers
    new = issue(ort, "sign")[0]
    assert new.issuer_id == issuer.id
    r_new = call(app, "GET", get_path(request_der(new))).ocsp
    r_old = call(app, "GET", get_path(request_der(items[0]))).ocsp
    assert verify(r_new, new.issuer) != verify(r_old, items[0].issuer)


# ------------------------------------------------------------------ bad input over HTTP
@pytest.mark.parametrize("body, ctype, status", [
    (b"garbage", "application/ocsp-request", 400),
    (b"\x30\x82\x01\x00\x30", "application/ocsp-request", 400),
    (b"", "application/ocsp-request", 400),
    (b"\x30\x03\x02\x01\x00", "text/plain", 415),
    (b"\x30\x03\x02\x01\x00", None, 415),
])
def test_bad_posts(app, body, ctype, status):
    resp = call(app, "POST", "/", body, content_type=ctype)
    assert resp.status == status
    assert resp.headers["Content-Type"] == "application/ocsp-response"
    assert resp.ocsp.response_status == S.MALFORMED_REQUEST


def test_truncated_request(app, items):
    der = request_der(items[0])
    for cut in range(1, len(der)):
        assert call(app, "POST", "/", der[:cut]).status == 400


def test_oversize_post(make_app, items):
    app = make_app(max_request_bytes=100)
    resp = call(app, "POST", "/", b"\x30" * 101)
    assert resp.status == 413 and resp.ocsp.response_status == S.MALFORMED_REQUEST


def test_health_and_method(app):
    assert call(app, "GET", "/").status == 200
    assert call(app, "GET", "").status == 200
    resp = call(app, "PUT", "/")
    assert resp.status == 405 and "GET, POST" in resp.headers["Allow"]


def test_garbage_get_is_400(app):
    resp = call(app, "GET", "/%%%not-base64")
    assert resp.status == 400 and resp.ocsp.response_status == S.MALFORMED_REQUEST


def test_store_failure_is_internal_error_and_the_app_keeps_serving(app, items, ort, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ort.status, "lookup", broken)
    resp = call(app, "POST", "/", request_der(items[0]))
    assert resp.status == 500
    assert resp.ocsp.response_status == S.INTERNAL_ERROR
    monkeypatch.undo()
    assert call(app, "POST", "/", request_der(items[0])).ocsp.response_status == S.SUCCESSFUL


@pytest.mark.parametrize("shape_known", [False, True], ids=["general path", "short nonced path"])
def test_saturated_signer_answers_try_later(make_app, items, shape_known):
    app = make_app(live_sign_concurrency=1, live_sign_wait_ms=0)
    if shape_known:  # a request like it answered before: the next one takes LiveSigner.nonced
        assert call(app, "POST", "/", request_der(items[0], nonce=b"w" * 16)).status == 200
    app.chain.live._signing.acquire()
    try:
        resp = call(app, "POST", "/", request_der(items[0], nonce=b"x" * 16))
    finally:
        app.chain.live._signing.release()
    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    assert resp.ocsp.response_status == S.TRY_LATER
    assert call(app, "POST", "/", request_der(items[0], nonce=b"x" * 16)).ocsp.response_status == S.SUCCESSFUL
