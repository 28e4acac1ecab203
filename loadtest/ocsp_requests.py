"""OCSP requests pre-encoded for the load generator, and the independent check of answers.

GET carries the DER request base64-encoded and then URL-encoded in the path (RFC 6960
appendix A.1); POST carries the DER as the body.  A nonced POST request is split around its
nonce octets so the wrk script can put fresh random octets there for every request
(``loadtest/wrk/ocsp.lua``).  :func:`check_response` re-reads an answer with pyca/cryptography,
not with the responder's own code.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import quote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from jpki_mock.vocab import Reason

#: RFC 6960 section 4.2.1 CertStatus tags: good [0] IMPLICIT NULL, revoked [1] IMPLICIT
#: RevokedInfo (constructed), unknown [2] IMPLICIT NULL.
STATUS_TAGS = {"good": 0x80, "revoked": 0xA1, "unknown": 0x82}
NONCE_LENGTH = 16  # RFC 9654 section 2.1: at least 1 and at most 32 octets SHOULD be sent; 16 is common
#: The 16 octets that mark where the nonce goes in a request template (loadtest/wrk/ocsp.lua
#: writes fresh random octets there); a pattern no real name hash, key hash or serial repeats.
NONCE_MARKER = bytes(range(0xE0, 0xF0))

_CERT_STATUS = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
                "unknown": ocsp.OCSPCertStatus.UNKNOWN}


@dataclass(frozen=True)
class Target:
    """A serial to ask about and the answer expected for it."""

    serial: int
    status: str  # good | revoked | unknown
    reason: int | None = None


def der_integer(value: int) -> bytes:
    """DER INTEGER TLV of a non-negative value (short length form: serials up to 126 octets)."""
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # one extra octet keeps it positive
    while len(body) > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return bytes([0x02, len(body)]) + body


def key_hash_tlv(key_hash: bytes) -> bytes:
    """issuerKeyHash as it appears in a CertID: an OCTET STRING."""
    return bytes([0x04, len(key_hash)]) + key_hash


def request_der(name_hash: bytes, key_hash: bytes, serial: int, nonce: bytes | None = None) -> bytes:
    """A one-CertID OCSPRequest with a SHA-1 CertID (RFC 5019 section 2.1.1), optionally nonced."""
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def get_path(prefix: str, der: bytes) -> str:
    """``{prefix}/{url-encoded base64 of the DER}`` (RFC 6960 appendix A.1)."""
    return f"{prefix.rstrip('/')}/{quote(base64.b64encode(der).decode(), safe='')}"


def nonce_template(name_hash: bytes, key_hash: bytes, serial: int) -> tuple[bytes, bytes]:
    """The nonced request's DER split around its nonce octets: before + nonce + after."""
    der = request_der(name_hash, key_hash, serial, NONCE_MARKER)
    found = der.count(NONCE_MARKER)
    if found != 1:
        # The hashes or the serial repeat the marker: the split would put the nonce elsewhere.
        raise ValueError(f"cannot split the request for serial {serial} around its nonce: the marker "
                         f"occurs {found} times, it must occur once")
    before, after = der.split(NONCE_MARKER)
    return before, after


def get_line(path: str, key_hash: bytes, target: Target) -> str:
    """One line of the wrk data file for a GET request (see ocsp.lua)."""
    return " ".join(["get", path.encode().hex(), key_hash_tlv(key_hash).hex(), der_integer(target.serial).hex(),
                     f"{STATUS_TAGS[target.status]:02x}"])


def post_line(name_hash: bytes, key_hash: bytes, target: Target) -> str:
    """One line of the wrk data file for a nonced POST request (see ocsp.lua)."""
    before, after = nonce_template(name_hash, key_hash, target.serial)
    # "-" stands for an empty part: the nonce extension is usually the last thing in the request.
    return " ".join(["post", before.hex() or "-", after.hex() or "-", key_hash_tlv(key_hash).hex(),
                     der_integer(target.serial).hex(), f"{STATUS_TAGS[target.status]:02x}"])


def verify_pkcs1(cert: x509.Certificate, signature: bytes, data: bytes,
                 algorithm: hashes.HashAlgorithm | None) -> None:
    """Verify a PKCS#1 v1.5 signature (sha*WithRSAEncryption) made with ``cert``'s key; raise
    InvalidSignature otherwise.  JPKI keys are RSA: another key type, or a signature with no
    separate hash (Ed25519), cannot be a right answer."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or algorithm is None:
        raise InvalidSignature(f"not an RSA signature by {cert.subject.rfc4514_string()}")
    key.verify(signature, data, padding.PKCS1v15(), algorithm)


def check_response(der: bytes, target: Target, ca_cert: x509.Certificate, nonce: bytes | None = None) -> list[str]:
    """What is wrong with this answer (empty when it is right): status, serial, certStatus,
    reason, the signature and the signer's delegation by the CA, and the echoed nonce."""
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        return [f"not an OCSP response: {exc}"]
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return [f"responseStatus {resp.response_status.name}"]
    problems = []
    if resp.serial_number != target.serial:
        problems.append(f"answers serial {resp.serial_number}, asked {target.serial}")
    if resp.certificate_status != _CERT_STATUS[target.status]:
        problems.append(f"serial {target.serial}: {resp.certificate_status.name}, expected {target.status}")
    elif target.status == "revoked" and target.reason not in (None, Reason.UNSPECIFIED):
        expected = Reason(target.reason).x509_flag
        if resp.revocation_reason != expected:
            problems.append(f"serial {target.serial}: reason {resp.revocation_reason}, expected "
                            f"{expected.name}")
    signer = resp.certificates[0] if resp.certificates else ca_cert
    try:
        verify_pkcs1(signer, resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
        if signer is not ca_cert:
            # A delegated responder (RFC 6960 section 4.2.2.2): issued by the CA, with id-kp-OCSPSigning.
            verify_pkcs1(ca_cert, signer.signature, signer.tbs_certificate_bytes, signer.signature_hash_algorithm)
            eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                problems.append("the signer certificate lacks id-kp-OCSPSigning")
    except InvalidSignature:
        problems.append("signature does not verify")
    except x509.ExtensionNotFound:
        problems.append("the signer certificate has no extended key usage")
    if nonce is not None:
        try:
            echoed = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed != nonce:
            problems.append(f"nonce {echoed!r} echoed, {nonce!r} sent")
    return problems
