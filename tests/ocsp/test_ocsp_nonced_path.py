"""The short live path for nonced POSTs (``LiveSigner.nonced``): a nonced request shaped like one
answered before is signed without the general decoding and answering steps.  It must give
the general path's bytes, follow revocations at once, and hand every other case back."""

from __future__ import annotations

import uuid

from asn1crypto import ocsp as a_ocsp
from cryptography.x509 import ReasonFlags, ocsp

import jpki_mock.ocsp.http as ocsp_http
from jpki_mock.ocsp.filter import FilterSource
from tests.support.ocsp import call, cert_id, multi_request, request_der, verify

S = ocsp.OCSPResponseStatus


def _no_general_path(monkeypatch, ort):
    """Make every general step fail loudly, so an answer can only come from the short path."""

    def general(*args, **kwargs):
        raise AssertionError("the nonced request took the general path")

    monkeypatch.setattr(ocsp_http, "parse_request", general)
    monkeypatch.setattr(FilterSource, "answer", general)
    monkeypatch.setattr(ort.store, "engine", None)  # nor touch the store


def _nonce(resp) -> bytes:
    basic = resp.asn1["response_bytes"]["response"].parsed
    exts = basic["tbs_response_data"]["response_extensions"]
    return {e["extn_id"].dotted: e["extn_value"].parsed for e in exts}["1.3.6.1.5.5.7.48.1.2"].native


def test_same_bytes_as_the_general_path(app, items, ort, monkeypatch):
    item = items[1]
    first = call(app, "POST", "/", request_der(item, nonce=b"\x01" * 32))  # the general path learns the shape
    assert first.ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    body = request_der(item, nonce=bytes(range(32)))
    _no_general_path(monkeypatch, ort)
    short = call(app, "POST", "/", body)
    monkeypatch.undo()
    assert short.status == 200 and short.headers == {"Content-Type": "application/ocsp-response",
                                                     "Content-Length": str(len(short.body))}
    assert _nonce(short) == bytes(range(32))
    assert short.ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert short.ocsp.serial_number == item.serial
    verify(short.ocsp, item.issuer)
    # The general path, on the same clock second, signs the same ResponseData: PKCS#1 v1.5
    # signatures are deterministic, so the whole answer is the same, byte for byte.
    seen = {}
    general = b"".join(app._respond({"REQUEST_METHOD": "POST"}, lambda s, h: seen.update(status=s), body, False))
    assert seen["status"] == "200 OK" and general == short.body


def test_revocation_and_hold_show_at_once(app, items, ort, monkeypatch):
    item = items[0]
    first = call(app, "POST", "/", request_der(item, nonce=b"a" * 16))
    assert first.ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    # The request right after the revoke call applies it (the epoch moved) and answers from memory.
    ort.authority.revoke("sign", item.serial, "certificateHold")
    held = call(app, "POST", "/", request_der(item, nonce=b"b" * 16)).ocsp
    assert held.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert held.revocation_reason == ReasonFlags.certificate_hold
    ort.authority.revoke("sign", item.serial, "keyCompromise")
    app.chain.presigned.check()  # applied here, so that what follows is the short path alone
    _no_general_path(monkeypatch, ort)
    revoked = call(app, "POST", "/", request_der(item, nonce=b"d" * 16))
    assert revoked.ocsp.revocation_reason == ReasonFlags.key_compromise
    assert _nonce(revoked) == b"d" * 16
    verify(revoked.ocsp, item.issuer)


def test_access_control_and_counts(make_app, items, ort, monkeypatch):
    app = make_app(access_control=True)
    name = f"rp-sign-{uuid.uuid4().hex[:6]}"
    credential = ort.registry.add_relying_party(name, "sign")[1]
    hdr = {"Authorization": f"Bearer {credential}"}
    both = {"Authorization": f"Bearer {ort.registry.add_relying_party(f'rp-both-{uuid.uuid4().hex[:6]}', 'both')[1]}"}
    sign, auth = items
    for item in items:  # shapes learnt and statuses read, for a party that may ask about both kinds
        learnt = call(app, "POST", "/", request_der(item, nonce=b"0" * 16), headers=both)
        assert learnt.ocsp.response_status == S.SUCCESSFUL
    call(app, "POST", "/", request_der(sign, nonce=b"0" * 16), headers=hdr)  # the party is remembered
    with monkeypatch.context() as m:
        _no_general_path(m, ort)
        for n in range(3):
            resp = call(app, "POST", "/", request_der(sign, nonce=bytes([n]) * 16), headers=hdr)
            assert resp.ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD and _nonce(resp) == bytes([n]) * 16
    # A kind the party may not query, no credential, a wrong one: refused by the general path.
    wrong = {"Authorization": "Bearer rp_wrong"}
    for asked, nonce, headers in ((auth, b"1", hdr), (sign, b"2", {}), (sign, b"3", wrong)):
        refused = call(app, "POST", "/", request_der(asked, nonce=nonce * 16), headers=headers)
        assert refused.ocsp.response_status == S.UNAUTHORIZED
    counts = {key[1:]: n for key, n in app.counters.totals().items()}
    assert counts[("sign", "good", name)] == 4
    assert counts[("auth", "unauthorized", name)] == 1
    assert counts[("sign", "unauthorized", "-")] == 2


def test_other_requests_keep_the_general_path(make_app, items, ort):
    # Never issued: nothing to read from memory, answered (and extended-revoked) in full each time.
    app = make_app(unknown_serial="revoked")
    for nonce in (b"e" * 20, b"f" * 20):
        resp = call(app, "POST", "/", multi_request([cert_id(items[0].issuer, 987654321)], nonce=nonce))
        basic = resp.asn1["response_bytes"]["response"].parsed
        exts = {e["extn_id"].dotted for e in basic["tbs_response_data"]["response_extensions"]}
        assert resp.ocsp.certificate_status == ocsp.OCSPCertStatus.REVOKED and "1.3.6.1.5.5.7.48.1.9" in exts
        assert _nonce(resp) == nonce
    # Two CertIDs: both answered, in order, every time.
    ids = [cert_id(items[0].issuer, items[0].serial), cert_id(items[0].issuer, 987654321)]
    for nonce in (b"g" * 16, b"h" * 16):
        basic = a_ocsp.OCSPResponse.load(call(app, "POST", "/", multi_request(ids, nonce=nonce)).body)
        responses = basic["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
        assert [r["cert_id"]["serial_number"].native for r in responses] == [items[0].serial, 987654321]
        assert [r["cert_status"].name for r in responses] == ["good", "revoked"]
    # nonce_policy = "ignore": the nonce is dropped and the cached answer served, never echoed.
    ignoring = make_app(nonce_policy="ignore")
    answers = [call(ignoring, "POST", "/", request_der(items[1], nonce=n)).body for n in (b"i" * 16, b"j" * 16)]
    assert answers[0] == answers[1] and len(ocsp.load_der_ocsp_response(answers[1]).extensions) == 0
