"""The request decoder: tolerant GET decoding, strict DER, every CertID, nonces (RFC 9654)."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from asn1crypto import ocsp as a_ocsp

from jpki_mock.ocsp.request import MalformedRequest, decode_get_path, parse_request
from tests.support.ocsp import cert_id, multi_request, request_der


@pytest.fixture
def req(items):
    return request_der(items[1])


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


def _find(items, wanted) -> bytes:
    """A request (built by asn1crypto) whose base64 satisfies ``wanted``: the 4-octet serial is
    varied in place, which keeps every length the same."""
    marker = bytes.fromhex("11223344")
    base = multi_request([cert_id(items[1].issuer, int.from_bytes(marker, "big"))])
    for n in range(0x10000000, 0x10100000, 7):
        der = base.replace(marker, n.to_bytes(4, "big"))
        if wanted(_b64(der)):
            return der
    raise AssertionError("no serial found")


def _with_plus_and_slash(items) -> bytes:
    return _find(items, lambda t: "+" in t and "/" in t)


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda t: "/" + t, id="plain"),
    pytest.param(lambda t: t, id="no-leading-slash"),
    pytest.param(lambda t: "//" + t, id="double-leading-slash"),
    pytest.param(lambda t: "/" + quote(t, safe=""), id="percent-encoded"),
    pytest.param(lambda t: "/" + quote(quote(t, safe=""), safe=""), id="double-percent-encoded"),
    pytest.param(lambda t: "/" + t.replace("+", " "), id="plus-as-space"),
    pytest.param(lambda t: "/" + t.replace("+", "-").replace("/", "_"), id="base64url"),
    pytest.param(lambda t: "/" + t.rstrip("="), id="no-padding"),
    pytest.param(lambda t: "/" + t.replace("+", "-").replace("/", "_").rstrip("="), id="base64url-no-padding"),
    pytest.param(lambda t: "/" + t.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D"), id="escaped-specials"),
])
def test_get_path_decoded_tolerantly(items, mangle):
    der = _with_plus_and_slash(items)
    text = _b64(der)
    assert decode_get_path(mangle(text)) == der


def test_double_slash_inside_base64_is_data_not_merged(items):
    der = _find(items, lambda t: "//" in t)
    assert parse_request(der).cert_ids[0].serial >= 0x10000000
    assert decode_get_path("/" + _b64(der)) == der


@pytest.mark.parametrize("path", ["/not base64!", "/M", "/%zz", "/MEQ*"])
def test_get_path_garbage_is_malformed(path):
    with pytest.raises(MalformedRequest):
        parse_request(decode_get_path(path))


def test_parse_single_certid(items, req):
    parsed = parse_request(req)
    assert len(parsed.cert_ids) == 1
    cid = parsed.cert_ids[0]
    assert cid.serial == items[1].serial and cid.algorithm == "sha1"
    # the CertID is kept exactly as sent: asn1crypto reads the same structure
    assert a_ocsp.CertId.load(cid.der).native["serial_number"] == items[1].serial


@pytest.mark.parametrize("alg", ["sha1", "sha256", "sha384", "sha512"])
def test_every_hash_algorithm(items, alg):
    cid = parse_request(request_der(items[0], alg)).cert_ids[0]
    assert cid.algorithm == alg
    assert len(cid.name_hash) == len(cid.key_hash)


def test_unsupported_hash_algorithm_is_kept_as_none(items):
    from asn1crypto import algos

    c = cert_id(items[0].issuer, 5, "sha1")
    c["hash_algorithm"] = algos.DigestAlgorithm({"algorithm": "md5"})
    c["issuer_name_hash"] = b"\x00" * 16
    c["issuer_key_hash"] = b"\x00" * 16
    assert parse_request(multi_request([c])).cert_ids[0].algorithm is None


def test_many_certids_each_in_its_own_algorithm(items):
    algs = ["sha1", "sha256", "sha384", "sha512"]
    der = multi_request([cert_id(items[0].issuer, 1000 + i, alg) for i, alg in enumerate(algs)])
    parsed = parse_request(der)
    assert [c.algorithm for c in parsed.cert_ids] == algs
    assert [c.serial for c in parsed.cert_ids] == [1000, 1001, 1002, 1003]


def test_certid_limit(items):
    der = multi_request([cert_id(items[0].issuer, i) for i in range(6)])
    assert len(parse_request(der, max_certids=6).cert_ids) == 6
    with pytest.raises(MalformedRequest, match="6 CertIDs"):
        parse_request(der, max_certids=5)


@pytest.mark.parametrize("size", [1, 16, 32, 128])
def test_nonce_lengths_accepted(items, size):
    nonce = bytes(range(size)) if size <= 256 else b""
    parsed = parse_request(request_der(items[0], nonce=nonce))
    assert parsed.nonce == nonce
    assert parsed.nonce_extension is not None


def test_nonce_over_128_octets_rejected(items):
    with pytest.raises(MalformedRequest, match="129 octets"):
        parse_request(multi_request([cert_id(items[0].issuer, 1)], nonce=b"n" * 129))


def test_nonce_without_inner_octet_string_is_accepted(items):
    """Some clients put the raw nonce in extnValue (pyca/cryptography#6404)."""
    from asn1crypto import core

    req = a_ocsp.OCSPRequest.load(multi_request([cert_id(items[0].issuer, 1)], nonce=b"x" * 16))
    tbs = req["tbs_request"]
    ext = a_ocsp.TBSRequestExtension({"extn_id": "nonce", "extn_value": core.OctetString(b"y" * 20)})
    raw = a_ocsp.OCSPRequest({"tbs_request": {"request_list": tbs["request_list"],
                                              "request_extensions": [ext]}}).dump()
    # replace the inner OCTET STRING (04 14 yy..) inside extnValue with the bare bytes
    raw = raw.replace(b"\x04\x16\x04\x14" + b"y" * 20, b"\x04\x14" + b"y" * 20)
    raw = _fix_lengths(raw)
    parsed = parse_request(raw)
    assert parsed.nonce == b"y" * 20


def _fix_lengths(der: bytes) -> bytes:
    """Re-encode with asn1crypto-independent length fixing: parse the outer layers and rebuild."""
    from jpki_mock import der as d

    def rebuild(data: bytes, start: int, end: int) -> bytes:
        out = b""
        pos = start
        while pos < end:
            tag, cs, ce = _lenient_tlv(data, pos, end)
            if tag & 0x20:
                out += d.tlv(tag, rebuild(data, cs, ce))
            else:
                out += d.tlv(tag, data[cs:ce])
            pos = ce
        return out

    return rebuild(der, 0, len(der))


def _lenient_tlv(data, pos, end):
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return tag, pos, min(pos + length, end)


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"\x00", "trailing"),
    (lambda d: b"\x30\x80" + d[2:] + b"\x00\x00", "indefinite"),
    (lambda d: b"\x30\x81" + d[1:], "non-minimal"),
    (lambda d: b"", "empty"),
    (lambda d: b"\x04\x00", "not a sequence"),
    (lambda d: b"\x30\x03\x30\x01\x00", "garbage inside"),
])
def test_strict_der(req, mutate, reason):
    with pytest.raises(MalformedRequest):
        parse_request(mutate(req))


def test_empty_request_list_is_malformed():
    with pytest.raises(MalformedRequest, match="requestList"):
        parse_request(bytes.fromhex("300430023000"))


def test_unknown_critical_extension_is_malformed(items):
    from asn1crypto import core

    ext = {"extn_id": "1.2.3.4", "critical": True, "extn_value": core.OctetString(b"x").dump()}
    base = a_ocsp.OCSPRequest.load(multi_request([cert_id(items[0].issuer, 1)]))
    der = a_ocsp.OCSPRequest({"tbs_request": {"request_list": base["tbs_request"]["request_list"],
                                              "request_extensions": [ext]}}).dump()
    with pytest.raises(MalformedRequest, match="critical"):
        parse_request(der)


def test_nonced_requests_share_the_parsed_certid_but_not_the_nonce(items):
    """CertIDs are cached by their DER: two requests for one certificate with different nonces
    give the same CertID and their own nonces; another CertID (here: another issuer) its own."""
    a = parse_request(request_der(items[0], nonce=b"\x01" * 16))
    b = parse_request(request_der(items[0], nonce=b"\x02" * 16))
    c = parse_request(request_der(items[1], nonce=b"\x01" * 16))
    assert a.cert_ids[0] is b.cert_ids[0] and (a.nonce, b.nonce) == (b"\x01" * 16, b"\x02" * 16)
    assert c.cert_ids[0] is not a.cert_ids[0] and c.cert_ids[0].der != a.cert_ids[0].der
    assert a.cert_ids[0].serial == items[0].cert.serial_number


def test_a_request_differing_only_in_its_nonce_is_read_from_its_shape(items, monkeypatch):
    """After one nonced request is parsed in full, the next with other nonce octets of the same
    length is read from its shape, and gives what a full parse gives."""
    from jpki_mock.ocsp import request

    a = request_der(items[0], nonce=b"\x01" * 16)
    b = request_der(items[0], nonce=bytes(range(16)))
    full_b = request._parse(b, 100)[0]
    parse_request(a)
    monkeypatch.setattr(request, "_parse", lambda *args: pytest.fail("parsed in full"))
    got = parse_request(b)
    assert got == full_b and got.nonce == bytes(range(16))
    # and what asn1crypto reads from the same bytes
    tbs = a_ocsp.OCSPRequest.load(b)["tbs_request"]
    ext = tbs["request_extensions"][0]
    assert got.nonce_extension == ext.dump() and got.nonce == ext["extn_value"].parsed.native
    req_cert = tbs["request_list"][0]["req_cert"]
    assert got.cert_ids[0].der == req_cert.dump() and got.cert_ids[0].serial == req_cert["serial_number"].native


def test_a_nonce_without_inner_octet_string_is_never_read_from_a_shape(items):
    """Raw nonce octets in extnValue (pyca/cryptography#6404) are read as an OCTET STRING when
    they happen to be one: such a request must always be parsed in full."""
    def raw(value: bytes) -> bytes:
        proper = multi_request([cert_id(items[0].issuer, 5)], nonce=b"y" * 16)
        return _fix_lengths(proper.replace(b"\x04\x12\x04\x10" + b"y" * 16, b"\x04\x10" + value))

    assert parse_request(raw(b"\xff" * 16)).nonce == b"\xff" * 16
    inner = b"\x04\x0e" + b"\x07" * 14  # 16 octets that are an OCTET STRING of 14
    assert parse_request(raw(inner)).nonce == b"\x07" * 14


def test_signing_slots_bound_concurrency():
    from jpki_mock.ocsp.live import SigningSlots

    slots = SigningSlots(2)
    assert slots.acquire(0) and slots.acquire(0.01)
    assert not slots.acquire(0) and not slots.acquire(0.01)  # both taken: refused, after the wait
    slots.release()
    assert slots.acquire(0) and not slots.acquire(0)
