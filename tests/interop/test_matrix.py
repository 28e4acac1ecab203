"""Interop matrix: every scenario-catalog item checked against a running mock by independent
verifiers, and each outcome must equal the manifest's expected outcome.

Verifiers: ``openssl verify -crl_check`` with the CRL fetched over HTTP from the certificate's
CRLDP URI, ``openssl ocsp`` against the responder (after ``openssl verify`` of the path, as a
relying party would), and pyhanko-certvalidator in CRL-required and OCSP-required modes
fetching over HTTP.  The catalog is built once for the module (``jpki-mock scenarios build``
against the server's own CA); checks run one after another, nothing heavy in parallel.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest
import requests
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv_errors
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule

from jpki_mock.kit.card import CardService
from jpki_mock.kit.scenarios import CATALOG
from tests.support.catalog import catalog_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

# openssl verify error numbers (X509_V_ERR_*) -> manifest outcomes
OPENSSL_ERRORS = {
    7: "bad_signature",        # CERT_SIGNATURE_FAILURE
    8: "bad_crl_signature",    # CRL_SIGNATURE_FAILURE
    9: "not_yet_valid",        # CERT_NOT_YET_VALID
    10: "expired",             # CERT_HAS_EXPIRED
    20: "unknown_issuer",      # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    23: "revoked",             # CERT_REVOKED
}
# RFC 5280 section 5.3.1 names as asn1crypto spells them -> JPKI / RFC camelCase
REASONS = {
    "unspecified": "unspecified", "key_compromise": "keyCompromise", "ca_compromise": "cACompromise",
    "affiliation_changed": "affiliationChanged", "superseded": "superseded",
    "cessation_of_operation": "cessationOfOperation", "certificate_hold": "certificateHold",
}


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    """A real server with the catalog built into its CA and fresh CRLs for the catalog's partitions."""
    with catalog_server(tmp_path_factory.mktemp("matrix") / "data") as mock:
        yield mock


@pytest.fixture(scope="module")
def crl_cache(tmp_path_factory):
    return {"dir": tmp_path_factory.mktemp("crls"), "files": {}}


def item_of(manifest, name):
    return next(i for i in manifest["items"] if i["name"] == name)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def expected(item) -> dict:
    return item["expected"]


# ---------------------------------------------------------------- openssl
def openssl_path(out: Path, manifest, item, *crl_args: str) -> dict | None:
    """``openssl verify``; None when the path is good, else the outcome its error means."""
    res = run("openssl", "verify", "-CAfile", str(out / manifest["trust_pem"]), *crl_args,
              str(out / item["files"]["pem"]))
    if res.returncode == 0:
        return None
    match = re.search(r"error (\d+) at 0 depth", res.stdout + res.stderr)
    assert match, res.stdout + res.stderr
    return {"outcome": OPENSSL_ERRORS.get(int(match.group(1)), f"openssl error {match.group(1)}")}


def fetch_crl(cache, url: str) -> Path:
    if url not in cache["files"]:
        r = requests.get(url, timeout=30)
        assert r.status_code == 200, (url, r.status_code)
        path = cache["dir"] / f"crl{len(cache['files'])}.crl"
        path.write_bytes(r.content)
        cache["files"][url] = path
    return cache["files"][url]


def openssl_crl(mock, crl_cache, item) -> dict:
    _, out, manifest = mock
    crl = out / item["files"]["crl"] if "crl" in item["files"] else fetch_crl(crl_cache, item["crl_url"])
    # -CRLfile reads PEM: convert with openssl itself.
    pem = crl.with_suffix(".pem")
    if not pem.exists():
        conv = run("openssl", "crl", "-inform", "DER", "-in", str(crl), "-out", str(pem))
        assert conv.returncode == 0, conv.stderr
    result = openssl_path(out, manifest, item, "-crl_check", "-CRLfile", str(pem))
    if result is None:
        return {"outcome": "valid"}
    if result["outcome"] == "revoked":
        # openssl verify does not print the reason: read it from the CRL (parsed by pyca/cryptography).
        parsed = x509.load_der_x509_crl(crl.read_bytes())
        entry = parsed.get_revoked_certificate_by_serial_number(item["serial"])
        try:
            result["reason"] = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
        except x509.ExtensionNotFound:  # RFC 5280 section 5.3.1: omitted rather than unspecified
            result["reason"] = "unspecified"
    return result


def parse_openssl_ocsp(text: str, label: str) -> dict:
    if "Response Verify Failure" in text:
        return {"outcome": "wrong_responder"}
    if "Status times invalid" in text:
        return {"outcome": "stale_response"}
    assert "Response verify OK" in text, text
    status = re.search(rf"{re.escape(label)}: (good|revoked|unknown)", text)
    assert status, text
    if status.group(1) == "good":
        return {"outcome": "valid"}
    if status.group(1) == "unknown":
        return {"outcome": "unknown"}
    reason = re.search(r"Reason: (\w+)", text)
    return {"outcome": "revoked", "reason": reason.group(1) if reason else None}


def openssl_ocsp(mock, item) -> dict:
    _srv, out, manifest = mock
    trust = str(out / manifest["trust_pem"])
    issuer = str(out / item["files"]["issuer_pem"])
    if "ocsp_response" in item["files"]:
        cert = str(out / item["files"]["pem"])
        res = run("openssl", "ocsp", "-respin", str(out / item["files"]["ocsp_response"]), "-issuer", issuer,
                  "-cert", cert, "-CAfile", trust)
        return parse_openssl_ocsp(res.stdout + res.stderr, cert)
    if "pem" not in item["files"]:  # a serial only: there is no certificate to check the path of
        res = run("openssl", "ocsp", "-issuer", issuer, "-serial", str(item["serial"]), "-url", item["ocsp_url"],
                  "-CAfile", trust)
        return parse_openssl_ocsp(res.stdout + res.stderr, str(item["serial"]))
    path = openssl_path(out, manifest, item)
    if path is not None:
        return path
    cert = str(out / item["files"]["pem"])
    res = run("openssl", "ocsp", "-issuer", issuer, "-cert", cert, "-url", item["ocsp_url"], "-CAfile", trust)
    return parse_openssl_ocsp(res.stdout + res.stderr, cert)


# ---------------------------------------------------------------- pyhanko-certvalidator
def pyhanko(mock, item, mode: str, usage: set[str] | None = None) -> dict:
    _, out, manifest = mock
    rule = RevocationCheckingRule.CRL_REQUIRED if mode == "crl" else RevocationCheckingRule.OCSP_REQUIRED
    policy = CertRevTrustPolicy(RevocationCheckingPolicy(ee_certificate_rule=rule,
                                                         intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK))
    roots = [asn1_x509.Certificate.load((out / i["der"]).read_bytes()) for i in manifest["issuers"]]
    files = item["files"]
    if "crl" in files:
        kw = {"crls": [(out / files["crl"]).read_bytes()], "allow_fetching": False}
    elif "ocsp_response" in files:
        kw = {"ocsps": [(out / files["ocsp_response"]).read_bytes()], "allow_fetching": False}
    else:
        kw = {"allow_fetching": True, "fetchers": RequestsFetcherBackend().get_fetchers()}
    ctx = ValidationContext(trust_roots=roots, revinfo_policy=policy, **kw)
    cert = asn1_x509.Certificate.load((out / files["der"]).read_bytes())
    try:
        asyncio.run(CertificateValidator(cert, validation_context=ctx).async_validate_usage(usage or set()))
    except pv_errors.RevokedError as err:
        return {"outcome": "revoked", "reason": REASONS[err.reason.native]}
    except pv_errors.ExpiredError:
        return {"outcome": "expired"}
    except pv_errors.NotYetValidError:
        return {"outcome": "not_yet_valid"}
    except pv_errors.PathBuildingError:
        return {"outcome": "unknown_issuer"}
    except pv_errors.StaleRevinfoError:
        return {"outcome": "stale_response"}
    except pv_errors.InsufficientRevinfoError as err:
        text = str(err)
        if "CRL signature could not be verified" in text:
            return {"outcome": "bad_crl_signature"}
        if "response signing certificate could not be validated" in text:
            return {"outcome": "wrong_responder"}
        return {"outcome": f"insufficient revocation information: {text}"}
    except pv_errors.PathValidationError as err:
        if "signature of the end-entity certificate could not be verified" in str(err):
            return {"outcome": "bad_signature"}
        return {"outcome": f"path validation error: {err}"}
    return {"outcome": "valid"}


# ---------------------------------------------------------------- the matrix
def cases(method: str, mode: str) -> list:
    return [pytest.param(s.name, id=s.name) for s in CATALOG
            if mode in s.checks and (method == "openssl" or s.name != "never-issued-serial")]


@pytest.mark.parametrize("name", cases("openssl", "crl"))
def test_openssl_verify_with_crl(mock, crl_cache, name):
    item = item_of(mock[2], name)
    assert openssl_crl(mock, crl_cache, item) == expected(item)


@pytest.mark.parametrize("name", cases("openssl", "ocsp"))
def test_openssl_ocsp(mock, name):
    item = item_of(mock[2], name)
    assert openssl_ocsp(mock, item) == expected(item)


@pytest.mark.parametrize("name", cases("pyhanko", "crl"))
def test_pyhanko_crl(mock, name):
    item = item_of(mock[2], name)
    assert pyhanko(mock, item, "crl") == expected(item)


@pytest.mark.parametrize("name", cases("pyhanko", "ocsp"))
def test_pyhanko_ocsp(mock, name):
    item = item_of(mock[2], name)
    assert pyhanko(mock, item, "ocsp") == expected(item)


def test_every_catalog_item_is_in_the_matrix(mock):
    covered = {n.values[0] for m in ("crl", "ocsp") for n in cases("openssl", m)}
    assert covered == {i["name"] for i in mock[2]["items"]}


# ---------------------------------------------------------------- a card's CMS signature
def cms_verify(out: Path, manifest, item, sig: Path, doc: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """``openssl cms -verify`` with the day's CRL: openssl cms has no -CRLfile, but with
    -crl_check it reads CRLs from the -CAfile PEM alongside the trusted roots."""
    crl = fetch_crl({"dir": tmp_path, "files": {}}, item["crl_url"])
    pem = run("openssl", "crl", "-inform", "DER", "-in", str(crl))
    trust = tmp_path / "trust-and-crl.pem"
    trust.write_text((out / manifest["trust_pem"]).read_text() + pem.stdout)
    return run("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig), "-content", str(doc),
               "-CAfile", str(trust), "-crl_check", "-out", "/dev/null")


def test_card_cms_signature_verifies(mock, tmp_path):
    srv, out, manifest = mock
    item = item_of(manifest, "valid-sign")
    doc = tmp_path / "application.xml"
    doc.write_text("<申請><氏名>佐藤 太郎</氏名></申請>\n", encoding="utf-8")
    sig = tmp_path / "application.p7s"
    cms, _ = CardService(srv.rt.authority).sign(item["card"]["holder"], doc.read_bytes(),
                                                item["card"]["sign_password"], "cms")
    sig.write_bytes(cms)
    # The receiving e-government system: signature and chain by openssl, with the day's CRL.
    res = cms_verify(out, manifest, item, sig, doc, tmp_path)
    assert res.returncode == 0 and "Verification successful" in res.stderr, res.stderr
    # ... and the signer's path by pyhanko-certvalidator, revocation by OCSP, for a non-repudiation use.
    signed = asn1_cms.ContentInfo.load(sig.read_bytes())["content"]
    sid = signed["signer_infos"][0]["sid"].chosen
    signer = next(c.chosen for c in signed["certificates"] if c.chosen.serial_number == sid["serial_number"].native
                  and c.chosen.issuer == sid["issuer"])
    assert signer.serial_number == item["serial"]
    signer_file = tmp_path / "signer.der"
    signer_file.write_bytes(signer.dump())
    result = pyhanko(mock, {**item, "files": {"der": str(signer_file)}}, "ocsp", {"non_repudiation"})
    assert result == {"outcome": "valid"}


def test_signature_of_a_moved_holder_is_refused(mock, tmp_path):
    """The card still signs after the move; the receiver must notice the revocation."""
    _srv, out, manifest = mock
    item = item_of(manifest, "moved-sign")
    doc = tmp_path / "doc.txt"
    doc.write_bytes(b"after the move")
    sig = tmp_path / "doc.p7s"
    # The card now holds the new certificate: sign with the old one's exported key instead.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

    key, cert, _ = pkcs12.load_key_and_certificates((out / item["files"]["pkcs12"]).read_bytes(),
                                                    item["pkcs12_passphrase"].encode())
    builder = pkcs7.PKCS7SignatureBuilder().set_data(doc.read_bytes()).add_signer(cert, key, hashes.SHA256())
    sig.write_bytes(builder.sign(serialization.Encoding.DER,
                                 [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
    res = cms_verify(out, manifest, item, sig, doc, tmp_path)
    assert res.returncode != 0 and "certificate revoked" in res.stderr
