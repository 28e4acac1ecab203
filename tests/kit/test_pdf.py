"""`jpki-mock card sign-pdf`: PAdES signatures by the card, validated by pyHanko's validator
against a running mock's OCSP responder and CRLs, with the JPKI CA as the only trust root.

The long-term case: a contract signed with a timestamp, the revocation data embedded and a
document timestamp over them (``--ltv --tsa-url``: B-LTA); then the signer moves house, so the
signature certificate is revoked (affiliationChanged).  Validated afterwards from the document
alone, the signature still passes: the timestamp proves it existed before the revocation and
the embedded OCSP response says the certificate was good then.  Without the embedded data, or
without the timestamp, it does not.
"""

from __future__ import annotations

import asyncio
import time
from io import BytesIO

import pytest
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign.ades.report import AdESIndeterminate, AdESPassed
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.policy_decl import (
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.policy_decl import (
    NO_REVOCATION,
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.registry import SimpleTrustManager

from jpki_mock.config import load_config
from jpki_mock.errors import Conflict, InvalidInput
from jpki_mock.kit.card import CardService, WrongPin
from jpki_mock.kit.pdf import sign_pdf
from jpki_mock.runtime import Runtime
from tests.support import HOLDER, Server, free_port
from tests.support.tsa import LocalTsa

pytestmark = [pytest.mark.server, pytest.mark.slow]

PASSWORD = "CONTRACT2026"
PIN = "1357"
OCSP_REQUIRED = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.OCSP_REQUIRED,
    intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK))
REVINFO_REQUIRED = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
    intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK))


def minimal_pdf(text: str = "Lease contract") -> bytes:
    """A one-page PDF written by pyHanko's own writer (no reportlab)."""
    w = PdfFileWriter()
    font = w.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"), pdf_name("/Subtype"): pdf_name("/Type1"),
        pdf_name("/BaseFont"): pdf_name("/Helvetica")}))
    content = w.add_object(generic.StreamObject(stream_data=f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()))
    w.insert_page(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Page"),
        pdf_name("/MediaBox"): generic.ArrayObject(map(generic.NumberObject, (0, 0, 595, 842))),
        pdf_name("/Contents"): content,
        pdf_name("/Resources"): generic.DictionaryObject({
            pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})}),
    }))
    out = BytesIO()
    w.write(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("pdf") / "data", workers=1)
    srv.token = srv.init()
    srv.start()
    rt = Runtime.open(load_config(srv.env))
    try:
        yield srv, rt
    finally:
        rt.close()
        srv.stop()


@pytest.fixture(scope="module")
def tsa():
    with LocalTsa() as local:
        yield local


def new_card(rt: Runtime, name: str) -> int:
    holder = rt.authority.create_holder({**HOLDER, "name": name}).id
    CardService(rt.authority).create(holder, auth_pin=PIN, sign_password=PASSWORD)
    return holder


def sign_ca(rt: Runtime) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(rt.authority.issuer("sign").certificate.public_bytes(Encoding.DER))


def only_signature(data: bytes):
    """The card's signature; anything after it must be document timestamps (B-LTA)."""
    sigs = PdfFileReader(BytesIO(data)).embedded_signatures
    assert sigs[0].sig_object["/Type"] == "/Sig"
    assert all(s.sig_object["/Type"] == "/DocTimeStamp" for s in sigs[1:])
    return sigs[0]


def lta_spec(rt: Runtime, tsa: LocalTsa, rule: RevinfoOnlineFetchingRule) -> PdfSignatureValidationSpec:
    """The JPKI sign CA trusted for the signer (revocation data required), the test TSA for
    timestamps; ``rule`` says whether the validator may fetch or only read the document."""
    return PdfSignatureValidationSpec(SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=[sign_ca(rt)]), revinfo_policy=REVINFO_REQUIRED),
        ts_cert_validation_policy=CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=[asn1_x509.Certificate.load(tsa.der)]),
            revinfo_policy=CertRevTrustPolicy(NO_REVOCATION)),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=rule, fetcher_backend=RequestsFetcherBackend()),
    ))


def test_pades_b_b_validates_against_the_mock(mock):
    _srv, rt = mock
    holder = new_card(rt, "契約\u3000花子")
    signed, cert = sign_pdf(CardService(rt.authority), holder, minimal_pdf(), PASSWORD, reason="賃貸借契約")
    sig = only_signature(signed)
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES, not adbe.pkcs7.detached
    assert sig.signer_cert.dump() == bytes(cert.der)
    # PAdES baseline: signing-certificate-v2 present, no CMS signingTime (the time is /M)
    attrs = {a["type"].native for a in sig.signer_info["signed_attrs"]}
    assert "signing_certificate_v2" in attrs and "signing_time" not in attrs
    context = ValidationContext(trust_roots=[sign_ca(rt)], revinfo_policy=OCSP_REQUIRED, allow_fetching=True,
                                fetcher_backend=RequestsFetcherBackend())
    status = validate_pdf_signature(sig, context)
    assert status.intact and status.valid and status.trusted and status.bottom_line, status.pretty_print_details()
    assert status.coverage.name == "ENTIRE_FILE"


def test_card_rules_apply_to_pdf_signing(mock):
    _srv, rt = mock
    holder = new_card(rt, "規則\u3000次郎")
    service = CardService(rt.authority)
    with pytest.raises(WrongPin):
        sign_pdf(service, holder, minimal_pdf(), "WRONG99")
    assert service.state(holder).as_dict()["sign"]["tries_left"] == 4
    with pytest.raises(InvalidInput):  # malformed: refused before the card is touched
        sign_pdf(service, holder, minimal_pdf(), "lower")
    assert service.state(holder).as_dict()["sign"]["tries_left"] == 4
    with pytest.raises(InvalidInput) as err:
        sign_pdf(service, holder, b"not a pdf", PASSWORD)
    assert err.value.field == "pdf"
    with pytest.raises(Conflict) as err:  # nothing listens there
        sign_pdf(service, holder, minimal_pdf(), PASSWORD, tsa_url=f"http://127.0.0.1:{free_port()}/tsa")
    assert err.value.field == "tsa_url"


def test_signed_before_revocation_still_validates_with_ltv_data(mock, tsa):
    srv, rt = mock
    holder = new_card(rt, "長期\u3000保存")
    service = CardService(rt.authority)
    document = minimal_pdf("Contract signed before the move")
    lt, cert = sign_pdf(service, holder, document, PASSWORD, ltv=True, tsa_url=tsa.url, tsa_roots=[tsa.der])
    bt, _ = sign_pdf(service, holder, document, PASSWORD, tsa_url=tsa.url)
    bb, _ = sign_pdf(service, holder, document, PASSWORD, ltv=True)
    assert tsa.requests >= 2

    # The DSS holds an OCSP response saying "good" for the signer, and the CRL, both from the mock.
    dss = DocumentSecurityStore.read_dss(PdfFileReader(BytesIO(lt)))
    ocsps = [asn1_ocsp.OCSPResponse.load(o.get_object().data) for o in dss.ocsps]
    answers = [r for o in ocsps for r in o.basic_ocsp_response["tbs_response_data"]["responses"]]
    assert any(a["cert_id"]["serial_number"].native == cert.serial and a["cert_status"].name == "good"
               for a in answers)
    assert dss.crls, "the CRL from the certificate's distribution point is embedded too"
    unsigned = {a["type"].native for a in only_signature(lt).signer_info["unsigned_attrs"]}
    assert "signature_time_stamp_token" in unsigned  # B-T: RFC 3161 token over the signature value

    time.sleep(1.1)  # the revocation must come strictly after the timestamp (one-second resolution)
    result = rt.authority.event(holder, "change", changes={"address": "大阪府大阪市北区梅田1-1"})
    assert [r["reason"] for r in result["revoked"]] == ["affiliationChanged"]

    # Today the certificate is revoked: a plain validation fetching from the mock refuses it.
    now_ctx = ValidationContext(trust_roots=[sign_ca(rt)], revinfo_policy=OCSP_REQUIRED, allow_fetching=True,
                                fetcher_backend=RequestsFetcherBackend())
    status = validate_pdf_signature(only_signature(lt), now_ctx)
    assert status.intact and status.valid and not status.bottom_line and status.revoked

    def lta(data: bytes, rule: RevinfoOnlineFetchingRule):
        return asyncio.run(ades_lta_validation(only_signature(data), lta_spec(rt, tsa, rule)))

    # B-LT from the document alone (no fetching at all): passes as made before the revocation.
    result_lt = lta(lt, RevinfoOnlineFetchingRule.LOCAL_ONLY)
    assert result_lt.ades_subindic == AdESPassed.OK, result_lt
    # ... and with pyHanko's default gathering rule (fetch for the present, not for the past).
    assert lta(lt, RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH).ades_subindic == AdESPassed.OK
    # Same timestamp, no embedded data, no fetching: nothing shows the certificate was good.
    assert isinstance(lta(bt, RevinfoOnlineFetchingRule.LOCAL_ONLY).ades_subindic, AdESIndeterminate)
    # Embedded data but no timestamp: nothing trusted dates the signature before the revocation.
    result_bb = lta(bb, RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH)
    assert result_bb.ades_subindic != AdESPassed.OK and result_bb.api_status.revoked, result_bb.failure_msg

    # The card still signs (B-B), but revocation data saying "revoked" is not embedded.
    assert sign_pdf(service, holder, document, PASSWORD)[0].startswith(b"%PDF-")
    with pytest.raises(Conflict) as err:
        sign_pdf(service, holder, document, PASSWORD, ltv=True)
    assert err.value.field == "ltv" and "revoked" in str(err.value)
    assert srv.proc is not None and srv.proc.poll() is None


def test_cli_sign_pdf(mock, tmp_path):
    srv, rt = mock
    holder = new_card(rt, "命令\u3000三郎")
    doc = tmp_path / "contract.pdf"
    doc.write_bytes(minimal_pdf())
    out = tmp_path / "contract-signed.pdf"
    res = srv.cli("card", "sign-pdf", str(holder), "--in", str(doc), "--out", str(out), "--password", "WRONG99",
                  check=False)
    assert res.returncode == 6 and b"4 of 5 tries left" in res.stderr + res.stdout
    res = srv.cli("card", "sign-pdf", str(holder), "--in", str(doc), "--out", str(out), "--password", PASSWORD,
                  "--ltv", check=False)
    assert res.returncode == 0, res.stderr
    assert b"PAdES signature by certificate" in res.stdout
    sig = only_signature(out.read_bytes())
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[sign_ca(rt)], allow_fetching=False))
    assert status.intact and status.valid and status.trusted
