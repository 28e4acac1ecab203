"""PDF signatures by the software card (``jpki-mock card sign-pdf``): PAdES baseline through pyHanko.

pyHanko lays out the signature (ETSI EN 319 142-1, docs/sources.md section 9: subfilter
``ETSI.CAdES.detached``, the signing-certificate-v2 attribute, the signing time in the
signature dictionary's ``/M`` rather than a signingTime attribute); the card signs the CMS
signed attributes with its signature key, as a real card's middleware hands the card a hash.
The key never leaves :class:`~jpki_mock.kit.card.CardService`.

Levels:

- **B-B** (default): the signature, the signer's certificate and the JPKI CA certificate.
- **B-T** with ``tsa_url``: an RFC 3161 signature timestamp from that time-stamping
  authority, the trusted proof of when the signature existed.  JPKI runs no TSA; relying
  parties use a commercial one.
- ``ltv``: the signer certificate's OCSP response and CRL, fetched from the URLs in it (the
  mock's responder and CRL distribution point), go into the document security store (DSS) in
  an incremental update after the signature (**B-LT** with a timestamp), and with a TSA a
  document timestamp over that DSS follows (**B-LTA**): the proof that the revocation data
  existed then.  A verifier years later can show the certificate was good when the signature
  was timestamped, even after it is revoked or expired (ETSI EN 319 102-1 section 5.6.3).
  Without a TSA the revocation data is there but nothing trusted dates the signature.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from io import BytesIO
from typing import Any

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import HTTPTimeStamper, TimestampRequestError
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule
from pyhanko_certvalidator.registry import SimpleCertificateStore

from jpki_mock.ca.models import Certificate
from jpki_mock.errors import Conflict, InvalidInput
from jpki_mock.kit.card import MAX_DATA, CardService, check_bytes

#: the signature field pyHanko creates when the document has none
FIELD = "Signature1"
#: ltv: the JPKI end-entity certificate names an OCSP responder (AIA) and a CRL distribution
#: point; fetch and keep both, so a verifier that uses either finds what it needs.  The rule
#: applies to the TSA's certificate too when it is not itself one of ``tsa_roots``.
LTV_POLICY = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.CRL_AND_OCSP_REQUIRED,
    intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED,
))


class CardSigner(signers.Signer):
    """A pyHanko signer whose private-key operation is the card's: RSASSA-PKCS1-v1_5 with
    SHA-256 over the CMS signed attributes, behind the signature password."""

    def __init__(self, service: CardService, holder_id: Any, password: str, cert: Certificate,
                 ca_der: bytes):
        self.service = service
        self.holder_id = holder_id
        self.password = password
        super().__init__(
            signing_cert=asn1_x509.Certificate.load(cert.der),
            cert_registry=SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(ca_der)]),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}),
        )

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != "sha256":
            raise SigningError(f"the card signs SHA-256 hashes, not {digest_algorithm}")
        if dry_run:  # pyHanko's first pass only measures: it reserves /Contents for a signature this long
            assert self.signing_cert is not None  # given to __init__
            return bytes(self.signing_cert.public_key.bit_size // 8)
        signature, _ = self.service.sign(self.holder_id, data, self.password, "pkcs1")
        return signature


def sign_pdf(service: CardService, holder_id: Any, pdf: Any, password: Any, *, ltv: bool = False,
             tsa_url: str | None = None, tsa_roots: Sequence[bytes] = (), reason: str | None = None,
             ) -> tuple[bytes, Certificate]:
    """``pdf`` signed with the card's signature key (PAdES); returns the signed PDF and the
    signer's certificate.  ``tsa_roots``: DER certificates that anchor the TSA's certificate
    (checked while embedding validation data)."""
    check_bytes(pdf, "pdf", MAX_DATA)
    if not pdf.startswith(b"%PDF-"):
        raise InvalidInput("is not a PDF (no %PDF- header)", field="pdf")
    # Reading the signature certificate opens the card with the password: a wrong one fails
    # here, before any network fetch, and costs a try as every other card command.
    cert = service.certificate(holder_id, "sign", password)
    ca_der = service.authority.issuer_by_id(cert.ca_id).certificate.public_bytes(Encoding.DER)
    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    except (PdfError, ValueError) as err:
        raise InvalidInput(f"cannot be read as a PDF: {err}", field="pdf") from None
    now = service.clock.now()
    context = None
    if ltv:
        roots = [asn1_x509.Certificate.load(der) for der in (ca_der, *tsa_roots)]
        context = ValidationContext(trust_roots=roots, allow_fetching=True, revinfo_policy=LTV_POLICY, moment=now,
                                    fetcher_backend=RequestsFetcherBackend())
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD, subfilter=SigSeedSubFilter.PADES, md_algorithm="sha256", reason=reason,
        embed_validation_info=ltv, validation_context=context,
        # With a TSA at hand, --ltv also timestamps the DSS (B-LTA): the document timestamp is the
        # proof that the embedded OCSP response and CRL existed then, which a verifier needs to
        # accept a signature whose certificate is revoked later (ETSI EN 319 102-1 section 5.6.3).
        use_pades_lta=ltv and tsa_url is not None,
    )
    pdf_signer = signers.PdfSigner(meta, CardSigner(service, holder_id, password, cert, ca_der),
                                   timestamper=HTTPTimeStamper(tsa_url) if tsa_url else None)
    try:
        out = asyncio.run(_sign(pdf_signer, writer, now))
    except SigningError as err:
        # pyHanko refuses to embed validation data that says the certificate is revoked, and
        # reports unreachable responders the same way.
        why = f"{err}: {err.__cause__}" if err.__cause__ is not None else str(err)
        raise Conflict(f"pyHanko could not sign: {why}", field="ltv" if ltv else "pdf") from None
    except TimestampRequestError as err:
        raise Conflict(f"the time-stamping authority did not answer: {err}", field="tsa_url") from None
    return out, cert


def read_certificate(data: bytes, field: str) -> bytes:
    """A certificate given as PEM or DER, as DER."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)
    except ValueError:
        raise InvalidInput("is not a PEM or DER certificate", field=field) from None


async def _sign(pdf_signer: signers.PdfSigner, writer: IncrementalPdfFileWriter, now: Any) -> bytes:
    """pyHanko's PdfSigner.async_sign_pdf, with the signing time taken from the mock's clock
    (time travel moves it) instead of the host's."""
    session = pdf_signer.init_signing_session(writer)
    session.system_time = now
    validation = await session.perform_presign_validation(writer)
    reserved = await session.estimate_signature_container_size(validation, tight=False)
    tbs = session.prepare_tbs_document(validation_info=validation, bytes_reserved=reserved)
    digest, output = tbs.digest_tbs_document()
    post = await tbs.perform_signature(
        document_digest=digest.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(
            signing_time=now, adobe_revinfo_attr=None if validation is None else validation.adobe_revinfo_attr),
    )
    await post.post_signature_processing(output)
    output.seek(0)
    return output.read()
