"""Response checks: every answer the load generator gets is judged, and a wrong one is a failure.

Each function returns ``None`` when the response is right and otherwise a short sentence
saying what was wrong (Locust shows it in the failures table).  Parsing uses pyca/cryptography
(``ocsp.load_der_ocsp_response``, ``x509.load_der_x509_crl``): an independent parser, not our
own encoder read back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

from jpki_mock.loadtest.corpus import Expect
from jpki_mock.loadtest.ocsp_requests import verify_pkcs1

OCSP_RESPONSE_TYPE = "application/ocsp-response"
#: accepted difference between the target's clock and ours, seconds (the mock backdates
#: thisUpdate by ocsp.backdate_seconds, 300 by default).
CLOCK_SKEW = 600
_RESPONSE_STATUS = {
    "successful": ocsp.OCSPResponseStatus.SUCCESSFUL,
    "malformed_request": ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
    "internal_error": ocsp.OCSPResponseStatus.INTERNAL_ERROR,
    "try_later": ocsp.OCSPResponseStatus.TRY_LATER,
    "sig_required": ocsp.OCSPResponseStatus.SIG_REQUIRED,
    "unauthorized": ocsp.OCSPResponseStatus.UNAUTHORIZED,
}
_CERT_STATUS = {
    "good": ocsp.OCSPCertStatus.GOOD,
    "revoked": ocsp.OCSPCertStatus.REVOKED,
    "unknown": ocsp.OCSPCertStatus.UNKNOWN,
}


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class SignatureCheck:
    """Optional: verify the response signature, by the CA or a delegated responder certificate
    it issued (RFC 6960 section 4.2.2.2).  Verified responder certificates are remembered."""

    issuers: dict[str, x509.Certificate]  # issuer label (auth-g1) -> CA certificate
    _ok: set[bytes] | None = None

    def __call__(self, resp: ocsp.OCSPResponse, issuer: str) -> str | None:
        if self._ok is None:
            self._ok = set()
        ca = self.issuers.get(issuer)
        if ca is None:
            return "no issuer certificate to verify the signature with"
        signer = ca
        if resp.certificates:
            responder = resp.certificates[0]
            der = responder.tbs_certificate_bytes
            if der not in self._ok:
                try:
                    responder.verify_directly_issued_by(ca)
                except (ValueError, TypeError, InvalidSignature):
                    return "the responder certificate was not issued by the certificate's CA"
                eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
                if x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                    return "the responder certificate lacks the OCSPSigning EKU"
                self._ok.add(der)
            signer = responder
        try:
            verify_pkcs1(signer, resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
        except InvalidSignature:
            return "the response signature does not verify"
        return None


def check_ocsp(expect: Expect, serial: int, alg: str, status_code: int, content_type: str | None, body: bytes,
               *, nonce: bytes | None = None, nonce_policy: str = "echo", now: datetime | None = None,
               signature: SignatureCheck | None = None, issuer: str | None = None) -> str | None:
    """Judge one OCSP answer to a request for ``serial`` with a CertID hashed with ``alg``."""
    if status_code != 200:
        return f"HTTP {status_code}, expected 200"
    if (content_type or "").split(";")[0].strip().lower() != OCSP_RESPONSE_TYPE:
        return f"Content-Type {content_type!r}, expected {OCSP_RESPONSE_TYPE}"
    try:
        resp = ocsp.load_der_ocsp_response(body)
    except ValueError as exc:
        return f"not an OCSP response: {exc}"
    want = _RESPONSE_STATUS[expect.response]
    if resp.response_status != want:
        return f"responseStatus {resp.response_status.name.lower()}, expected {expect.response}"
    if want != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return None
    singles = list(resp.responses)
    if len(singles) != 1:
        return f"{len(singles)} SingleResponses to a one-CertID request"
    single = singles[0]
    if single.serial_number != serial:
        return f"answered serial {single.serial_number}, asked {serial}"
    if single.hash_algorithm.name != alg:
        return (f"CertID hashed with {single.hash_algorithm.name}, asked {alg} "
                "(RFC 9919: answer in the request's algorithm)")
    assert expect.status is not None  # the corpus gives every successful expectation a certStatus
    got = single.certificate_status
    if got != _CERT_STATUS[expect.status]:
        return f"certStatus {got.name.lower()}, expected {expect.status}"
    if got == ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason.value if single.revocation_reason is not None else None
        # RFC 5280 section 5.3.1: the reason code unspecified SHOULD be left out.
        if reason != expect.reason and not (expect.reason == "unspecified" and reason is None):
            return f"revocationReason {reason}, expected {expect.reason}"
        if expect.revoked_at is not None:
            revoked_time = single.revocation_time_utc
            assert revoked_time is not None  # cryptography sets it for every REVOKED SingleResponse
            at = _utc(revoked_time).timestamp()
            if abs(at - expect.revoked_at) > 1.0:
                return f"revocationTime {revoked_time:%Y-%m-%dT%H:%M:%SZ} differs from the store's"
    now = now or datetime.now(UTC)
    if (_utc(single.this_update_utc) - now).total_seconds() > CLOCK_SKEW:
        return "thisUpdate is in the future"
    if single.next_update_utc is not None and (now - _utc(single.next_update_utc)).total_seconds() > CLOCK_SKEW:
        return "nextUpdate has passed: a stale response"
    if nonce is not None and nonce_policy in ("echo", "require"):
        try:
            echoed = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return "the nonce was not echoed (RFC 9654)"
        if echoed != nonce:
            return "the echoed nonce differs from the one sent"
    if signature is not None and issuer is not None:
        return signature(resp, issuer)
    return None


def check_crl(status_code: int, body: bytes, issuer: x509.Certificate, *, conditional: bool,
              must_list: Iterable[tuple[int, str | None]] = (), must_not_list: Iterable[int] = (),
              now: datetime | None = None) -> tuple[str | None, x509.CertificateRevocationList | None]:
    """Judge one CRL download.  ``304`` is right only for a conditional request (RFC 9110
    section 13.1); a ``200`` must be a DER CRL signed by ``issuer``, still fresh, listing every
    serial in ``must_list`` (with its reason) and none in ``must_not_list``."""
    if status_code == 304:
        return (None if conditional else "304 Not Modified to an unconditional request"), None
    if status_code != 200:
        return f"HTTP {status_code}, expected 200", None
    try:
        crl = x509.load_der_x509_crl(body)
    except ValueError as exc:
        return f"not a DER CRL: {exc}", None
    if crl.issuer != issuer.subject:
        return "the CRL issuer is not the CA", crl
    ca_key = issuer.public_key()
    # JPKI CA keys are RSA (a key of another type cannot have signed a right answer).
    if not isinstance(ca_key, rsa.RSAPublicKey) or not crl.is_signature_valid(ca_key):
        return "the CRL signature does not verify with the CA key", crl
    now = now or datetime.now(UTC)
    if crl.next_update_utc is not None and (now - _utc(crl.next_update_utc)).total_seconds() > CLOCK_SKEW:
        return "nextUpdate has passed: a stale CRL", crl
    for serial, reason in must_list:
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        if entry is None:
            return f"revoked serial {serial} is missing", crl
        if reason not in (None, "unspecified"):
            try:
                got = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
            except x509.ExtensionNotFound:
                got = None
            if got != reason:
                return f"serial {serial} listed with reason {got}, expected {reason}", crl
    for serial in must_not_list:
        if crl.get_revoked_certificate_by_serial_number(serial) is not None:
            return f"good serial {serial} is listed as revoked", crl
    return None, crl
