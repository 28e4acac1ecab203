"""The response checks judge real DER: right answers pass, every kind of wrong answer fails."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from jpki_mock.loadtest.checks import SignatureCheck, check_crl, check_ocsp
from jpki_mock.loadtest.corpus import Expect
from tests.support.fake_ocsp_target import NOW, build_response, make_ca, unauthorized

CT = "application/ocsp-response"


@pytest.fixture(scope="module")
def ca():
    return make_ca()


SHA1 = hashes.SHA1()


def request(serial=4242, alg=SHA1, nonce=None):
    b = ocsp.OCSPRequestBuilder().add_certificate_by_hash(b"n" * alg.digest_size, b"k" * alg.digest_size, serial,
                                                          alg)
    if nonce:
        b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


GOOD = Expect("successful", "good")
SUPERSEDED_AT = (NOW - timedelta(days=3)).timestamp()
SUPERSEDED = Expect("successful", "revoked", "superseded", SUPERSEDED_AT)


def answer(ca, status="good", **kw):
    cert, key = ca
    return build_response(request(), cert, key, status, **kw)


def test_right_answers_pass(ca):
    assert check_ocsp(GOOD, 4242, "sha1", 200, CT, answer(ca)) is None
    body = answer(ca, "revoked", reason=x509.ReasonFlags.superseded,
                  revoked_at=datetime.fromtimestamp(SUPERSEDED_AT, UTC))
    assert check_ocsp(SUPERSEDED, 4242, "sha1", 200, CT, body) is None
    assert check_ocsp(Expect("successful", "unknown"), 4242, "sha1", 200, CT, answer(ca, "unknown")) is None
    assert check_ocsp(Expect("unauthorized"), 4242, "sha1", 200, CT, unauthorized()) is None


@pytest.mark.parametrize("expect,status,kw,body_fn,message", [
    (GOOD, 500, {}, None, "HTTP 500"),
    (GOOD, 200, {"ct": "text/html"}, None, "Content-Type"),
    (GOOD, 200, {}, lambda ca: b"<html>", "not an OCSP response"),
    (GOOD, 200, {}, lambda ca: answer(ca, "revoked", reason=x509.ReasonFlags.superseded),
     "certStatus revoked, expected good"),
    (SUPERSEDED, 200, {}, lambda ca: answer(ca, "good"), "certStatus good, expected revoked"),
    (SUPERSEDED, 200, {}, lambda ca: answer(ca, "revoked", reason=x509.ReasonFlags.key_compromise),
     "revocationReason keyCompromise, expected superseded"),
    (SUPERSEDED, 200, {}, lambda ca: answer(ca, "revoked", reason=x509.ReasonFlags.superseded, revoked_at=NOW),
     "revocationTime"),
    (Expect("successful", "unknown"), 200, {}, lambda ca: answer(ca, "good"), "certStatus good, expected unknown"),
    (Expect("unauthorized"), 200, {}, lambda ca: answer(ca, "good"),
     "responseStatus successful, expected unauthorized"),
    (GOOD, 200, {}, lambda ca: unauthorized(), "responseStatus unauthorized, expected successful"),
    (GOOD, 200, {}, lambda ca: answer(ca, serial_offset=1), "answered serial 4243, asked 4242"),
    (GOOD, 200, {}, lambda ca: answer(ca, next_update=-timedelta(hours=2)), "stale"),
])
def test_wrong_answers_fail(ca, expect, status, kw, body_fn, message):
    body = body_fn(ca) if body_fn else answer(ca)
    problem = check_ocsp(expect, 4242, "sha1", status, kw.get("ct", CT), body)
    assert problem is not None and message in problem


def test_hash_algorithm_must_be_the_requests(ca):
    cert, key = ca
    body = build_response(request(alg=hashes.SHA256()), cert, key, "good")
    assert check_ocsp(GOOD, 4242, "sha256", 200, CT, body) is None
    assert "hashed with sha256, asked sha1" in check_ocsp(GOOD, 4242, "sha1", 200, CT, body)


def test_nonce_must_be_echoed(ca):
    cert, key = ca
    nonce = b"\x01" * 16
    echoed = build_response(request(nonce=nonce), cert, key, "good")
    dropped = build_response(request(nonce=nonce), cert, key, "good", echo_nonce=False)
    assert check_ocsp(GOOD, 4242, "sha1", 200, CT, echoed, nonce=nonce) is None
    assert "not echoed" in check_ocsp(GOOD, 4242, "sha1", 200, CT, dropped, nonce=nonce)
    assert "differs" in check_ocsp(GOOD, 4242, "sha1", 200, CT, echoed, nonce=b"\x02" * 16)
    assert check_ocsp(GOOD, 4242, "sha1", 200, CT, dropped, nonce=nonce, nonce_policy="ignore") is None


def test_signature_check(ca):
    cert, _key = ca
    other_cert, other_key = make_ca("Impostor")
    sig = SignatureCheck({"auth-g1": cert})
    assert check_ocsp(GOOD, 4242, "sha1", 200, CT, answer(ca), signature=sig, issuer="auth-g1") is None
    forged = build_response(request(), other_cert, other_key, "good")
    assert "does not verify" in check_ocsp(GOOD, 4242, "sha1", 200, CT, forged, signature=sig, issuer="auth-g1")


def make_crl(ca, entries, key=None, next_update=timedelta(days=1)):
    cert, ca_key = ca
    b = (x509.CertificateRevocationListBuilder().issuer_name(cert.subject)
         .last_update(min(NOW - timedelta(minutes=1), NOW + next_update - timedelta(hours=1)))
         .next_update(NOW + next_update))
    for serial, reason in entries:
        rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - timedelta(days=1))
        if reason:
            rb = rb.add_extension(x509.CRLReason(reason), critical=False)
        b = b.add_revoked_certificate(rb.build())
    return b.sign(key or ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_crl_checks(ca):
    cert, _ = ca
    body = make_crl(ca, [(7, x509.ReasonFlags.superseded), (9, x509.ReasonFlags.certificate_hold)])
    ok, parsed = check_crl(200, body, cert, conditional=False, must_list=[(7, "superseded"), (9, "certificateHold")],
                           must_not_list=[8])
    assert ok is None and parsed is not None
    assert "missing" in check_crl(200, body, cert, conditional=False, must_list=[(11, None)])[0]
    assert "reason superseded, expected keyCompromise" in check_crl(200, body, cert, conditional=False,
                                                                    must_list=[(7, "keyCompromise")])[0]
    assert "good serial 9 is listed" in check_crl(200, body, cert, conditional=False, must_not_list=[9])[0]
    _, other_key = make_ca("Impostor")
    assert "does not verify" in check_crl(200, make_crl(ca, [], key=other_key), cert, conditional=False)[0]
    assert "stale" in check_crl(200, make_crl(ca, [], next_update=-timedelta(hours=2)), cert, conditional=False)[0]
    assert "not a DER CRL" in check_crl(200, b"-----BEGIN", cert, conditional=False)[0]
    assert "HTTP 404" in check_crl(404, b"", cert, conditional=False)[0]
    assert check_crl(304, b"", cert, conditional=True)[0] is None
    assert "unconditional" in check_crl(304, b"", cert, conditional=False)[0]
