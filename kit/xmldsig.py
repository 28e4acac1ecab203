"""XML signatures by the software card (``jpki-mock card sign-xml``): enveloped XMLDSig through signxml.

An application document signed in place (docs/sources.md section 9): an enveloped
signature (W3C XML Signature 1.1 section 6.6.4) over the whole document (``URI=""``),
canonical XML 1.0, RSA-SHA256 (RFC 6931 section 2.3.2) with SHA-256 digests, and the signer's
certificate in ``KeyInfo/X509Data`` so a receiver that trusts the JPKI signature CA can check
it.  signxml computes the digests and the SignedInfo; the card signs the canonical SignedInfo
with its signature key (:class:`CardKey`), so the key never leaves
:class:`~jpki_mock.kit.card.CardService`.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import Criticality, ExtensionPolicy
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.exceptions import InvalidInput as SignxmlInvalidInput
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier

from jpki_mock.ca.models import Certificate
from jpki_mock.errors import InvalidInput
from jpki_mock.kit.card import MAX_DATA, CardService, check_bytes

SIGNATURE_METHOD = SignatureMethod.RSA_SHA256
DIGEST_METHOD = DigestAlgorithm.SHA256
C14N_METHOD = CanonicalizationMethod.CANONICAL_XML_1_0


class CardKey:
    """The card's signature key as signxml uses a private key (``sign`` with PKCS#1 v1.5 and
    SHA-256, ``key_size``, ``public_key``): every signature is the card's, behind the password."""

    def __init__(self, service: CardService, holder_id: Any, password: str, cert: Certificate):
        self.service = service
        self.holder_id = holder_id
        self.password = password
        public = x509.load_der_x509_certificate(cert.der).public_key()
        assert isinstance(public, rsa.RSAPublicKey)  # JPKI end-entity keys are RSA
        self._public = public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign(self, data: bytes, padding: AsymmetricPadding, algorithm: hashes.HashAlgorithm) -> bytes:
        # signxml passes ``padding=`` and ``algorithm=`` by keyword, as to a pyca private key
        if not isinstance(padding, PKCS1v15) or not isinstance(algorithm, hashes.SHA256):
            raise InvalidInput("the card signs RSASSA-PKCS1-v1_5 with SHA-256 only", field="signature_method")
        signature, _ = self.service.sign(self.holder_id, data, self.password, "pkcs1")
        return signature


class _Utf8Serialising:
    """signxml copies a tree by writing it with lxml's default encoding (ASCII) and parsing it
    back (signxml 5.2, ``XMLProcessor._tostring``).  ASCII output turns non-ASCII element
    names, which Japanese application documents use (``<申請書>``), into character references,
    which XML does not allow in names, so the copy fails to parse.  Writing UTF-8 keeps them."""

    def _tostring(self, xml_node: Any, **kwargs: Any) -> bytes:
        kwargs.setdefault("encoding", "UTF-8")
        return etree.tostring(xml_node, **kwargs)


class Signer(_Utf8Serialising, XMLSigner):
    """signxml's XMLSigner for documents with Japanese element names."""


def jpki_ee_policy() -> ExtensionPolicy:
    """signxml's default end-entity extension policy (KeyUsage with digitalSignature) that also
    accounts for JPKI's critical certificatePolicies extension.  signxml checks the chain with
    pyca/cryptography's verifier, which refuses any critical extension its policy does not
    name (RFC 5280 section 4.2); JPKI's certificate policies are critical (docs/profile.md)."""
    return (ExtensionPolicy.permit_all()
            .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _digital_signature)
            .may_be_present(x509.CertificatePolicies, Criticality.AGNOSTIC, None))


def _digital_signature(_policy: Any, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is None or not usage.digital_signature:
        raise ValueError("certificate KeyUsage does not allow digitalSignature")


class Verifier(_Utf8Serialising, XMLVerifier):
    """signxml's XMLVerifier for JPKI signatures on documents with Japanese element names (for
    relying parties and the tests; the checks are signxml's own), with :func:`jpki_ee_policy`
    unless another ``ee_policy`` is given."""

    def verify(self, data: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("ee_policy", jpki_ee_policy())
        return super().verify(data, **kwargs)


def parse_document(document: bytes) -> etree._Element:
    """The application document, parsed without entity expansion or network access (an XML
    bomb or an external entity in a submitted document must not reach the signer); a DTD is
    refused, as signxml refuses it."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False)
    try:
        root = etree.fromstring(document, parser=parser)
    except etree.XMLSyntaxError as err:
        raise InvalidInput(f"is not well-formed XML: {err}", field="document") from None
    info = etree.ElementTree(root).docinfo
    if info.internalDTD is not None or info.externalDTD is not None:
        raise InvalidInput("has a DTD (<!DOCTYPE ...>): XML signatures here take documents without one",
                           field="document")
    return root


def sign_xml(service: CardService, holder_id: Any, document: Any, password: Any) -> tuple[bytes, Certificate]:
    """``document`` with an enveloped XMLDSig signature by the card's signature key appended to
    its root element; returns the signed document (UTF-8, with an XML declaration) and the
    signer's certificate."""
    check_bytes(document, "document", MAX_DATA)
    # The password opens the card here first: a wrong one costs a try before any work.
    cert = service.certificate(holder_id, "sign", password)
    root = parse_document(document)
    pem = x509.load_der_x509_certificate(cert.der).public_bytes(Encoding.PEM).decode()
    signer = Signer(method=SignatureConstructionMethod.enveloped, signature_algorithm=SIGNATURE_METHOD,
                    digest_algorithm=DIGEST_METHOD, c14n_algorithm=C14N_METHOD)
    try:
        signed = signer.sign(root, key=CardKey(service, holder_id, password, cert),  # type: ignore[arg-type]
                             cert=pem)
    except SignxmlInvalidInput as err:
        raise InvalidInput(f"cannot be signed: {err}", field="document") from None
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8"), cert
