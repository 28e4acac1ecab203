"""The explainer's tree, checked against asn1crypto: every named node's bytes are exactly the
bytes asn1crypto encodes for that field, and the artefact kind is recognised."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from asn1crypto import cms, ocsp, x509
from cryptography import x509 as pyx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as pyocsp

from jpki_mock.console import explain
from jpki_mock.errors import InvalidInput
from tests.support.pki import HOLDER

PASS = "explain-pass-1"


def node_named(root: explain.Node, name: str) -> explain.Node:
    found = [n for n in root.walk() if n.name == name or n.name.startswith(name + " ")]
    assert found, f"no node named {name!r}; names: {sorted({n.name for n in root.walk()})}"
    return found[0]


@pytest.fixture
def issued(rt: Any) -> Any:
    holder = rt.authority.create_holder(HOLDER)
    return rt.authority.issue(holder.id, "both", pkcs12_passphrase=PASS)


def test_certificate_tree_matches_asn1crypto_field_by_field(issued: Any) -> None:
    der = issued[0].certificate.der
    ex = explain.explain(der)
    assert ex.kind == "certificate"
    assert (ex.root.offset, ex.root.end) == (0, len(der))
    cert = x509.Certificate.load(der)
    tbs = cert["tbs_certificate"]
    for name in ("serial_number", "validity", "subject", "issuer", "subject_public_key_info"):
        node = node_named(ex.root, name)
        assert der[node.offset:node.end] == tbs[name].dump(), name
    serial = node_named(ex.root, "serial_number")
    assert serial.value == str(tbs["serial_number"].native)
    # The basic four are named by their JPKI OIDs inside the SAN's otherNames.
    names = [n.name for n in ex.root.walk()]
    assert any("jpki-name (氏名)" in n for n in names)
    assert any("jpki-address (住所)" in n for n in names)
    policy = [n for n in ex.root.walk() if n.oid.startswith("1.2.392.200149.8.5.1.")]
    assert policy and "jpki-policy" in policy[0].value
    # Extension values are shown as the DER they contain.
    san = next(n for n in ex.root.walk() if n.name.endswith("subject_alt_name"))
    value = next(c for c in san.children if c.name == "extn_value")
    assert value.encapsulates and value.children[0].type_name.endswith("GeneralNames")


def test_every_node_lies_inside_its_parent(issued: Any) -> None:
    ex = explain.explain(issued[1].certificate.der)

    def check(node: explain.Node) -> None:
        start = node.offset + node.header_len + (1 if node.encapsulates and node.tag == 0x03 else 0)
        pos = start
        for child in node.children:
            assert child.offset == pos and child.end <= node.end
            pos = child.end
        if node.children:
            assert pos == node.end
        for child in node.children:
            check(child)

    check(ex.root)


def test_pem_base64_and_der_give_the_same_tree(issued: Any) -> None:
    der = issued[0].certificate.der
    pem = pyx509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    trees = [explain.explain(raw).root.walk() for raw in (der, pem, base64.b64encode(der))]
    assert [(n.offset, n.name) for n in trees[0]] == [(n.offset, n.name) for n in trees[1]] == \
        [(n.offset, n.name) for n in trees[2]]


def test_ocsp_request_and_response_are_recognised(rt: Any, issued: Any) -> None:
    cert = pyx509.load_der_x509_certificate(issued[0].certificate.der)
    issuer = pyx509.load_der_x509_certificate(rt.authority.issuer_by_id(issued[0].certificate.ca_id).der)
    req = pyocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()) \
        .add_extension(pyx509.OCSPNonce(b"\x01" * 16), critical=False).build().public_bytes(serialization.Encoding.DER)
    ex = explain.explain(req)
    assert ex.kind == "ocsp-request"
    parsed = ocsp.OCSPRequest.load(req)
    cert_id = parsed["tbs_request"]["request_list"][0]["req_cert"]
    node = node_named(ex.root, "req_cert")
    assert req[node.offset:node.end] == cert_id.dump()
    assert node_named(ex.root, "serial_number").value == str(cert.serial_number)


def test_pkcs12_needs_its_passphrase_and_shows_its_certificates(issued: Any) -> None:
    p12 = issued[0].pkcs12
    with pytest.raises(InvalidInput) as missing:
        explain.explain(p12)
    assert missing.value.field == "passphrase"
    with pytest.raises(InvalidInput) as wrong:
        explain.explain(p12, "not-the-passphrase")
    assert wrong.value.field == "passphrase" and "wrong passphrase" in wrong.value.message
    ex = explain.explain(p12, PASS)
    assert ex.kind == "pkcs12"
    inner_serials = [x509.Certificate.load(i.der).serial_number for _label, i in ex.inner]
    assert issued[0].certificate.serial in inner_serials


def test_cms_signature_shows_the_signer_certificate(issued: Any) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

    bundle = pkcs12.load_pkcs12(issued[0].pkcs12, PASS.encode())
    assert bundle.key is not None and bundle.cert is not None
    signed = pkcs7.PKCS7SignatureBuilder().set_data(b"hello").add_signer(
        bundle.cert.certificate, bundle.key, hashes.SHA256()).sign(serialization.Encoding.DER, [])  # type: ignore[arg-type]
    ex = explain.explain(signed)
    assert ex.kind == "cms"
    assert cms.ContentInfo.load(signed)["content_type"].native == "signed_data"
    assert [x509.Certificate.load(i.der).serial_number for _l, i in ex.inner] == [issued[0].certificate.serial]


@pytest.mark.parametrize(("raw", "field", "words"), [
    (b"", "input", "is empty"),
    (b"   \n", "input", "is empty"),
    (b"not base64 at all!", "input", "neither DER"),
    (b"\x30\x80\x02\x01\x01\x00\x00", "input", "indefinite length"),
    (b"\x30\x03\x02\x01\x01\xff", "input", "after the first value"),
    (b"\x30\x05\x02\x01", "input", "runs past"),
    (b"A" * (explain.MAX_INPUT_BYTES + 1), "input", "at most"),
])
def test_bad_input_is_named(raw: bytes, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as err:
        explain.explain(raw)
    assert err.value.field == field
    assert words in err.value.message + str(err.value.allowed)


def test_unknown_der_is_shown_raw() -> None:
    ex = explain.explain(b"\x30\x06\x02\x01\x05\x01\x01\xff")
    assert ex.kind == "der" and [c.value for c in ex.root.children] == ["5", "TRUE"]
