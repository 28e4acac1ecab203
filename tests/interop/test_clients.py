"""What common clients do with JPKI's artefacts, measured: the facts docs/clients.md states.

One mock, with delta CRLs on, behind a recording proxy (tests/support/recorder.py) that it
names in its certificates' AIA and CRL distribution points, so each client fetches as in
production and the test reads what it really sent: nonce or not, SHA-1 or SHA-256 CertID,
which CRLs.  Two signature certificates of municipality 13101: ``good``, and ``late``, revoked
(keyCompromise) after the partition CRL was published, so only the delta CRL lists it.

Clients: OpenSSL (openssl verify / ocsp), Java (the JDK's PKIX CertPathValidator through
tests/interop/java/JpkiVerify.java), GnuTLS (certtool, ocsptool), NSS (crlutil, vfychain),
pyHanko's certvalidator and pyca/cryptography, and Node's crypto module.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv_errors
from pyhanko_certvalidator.fetchers import Fetchers
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.fetchers.requests_fetchers.ocsp_client import RequestsOCSPFetcher
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule

from jpki_mock.config import load_config
from jpki_mock.kit.card import CardService
from jpki_mock.runtime import Runtime
from tests.support import HOLDER, Server
from tests.support.java import compile_verifier, run_verifier
from tests.support.recorder import Recorder, ocsp_facts

pytestmark = [pytest.mark.server, pytest.mark.slow]

PARTITION = "/crl/sign/g1/13101.crl"
DELTA = "/crl/sign/g1/13101-delta.crl"


class Lab:
    def __init__(self, rec: Recorder, srv: Server, work: Path):
        self.rec = rec
        self.srv = srv
        self.work = work

    def run(self, *cmd: str, ok: bool = True) -> str:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, cwd=self.work)
        out = done.stdout + done.stderr
        if ok:
            assert done.returncode == 0, out
        return out

    def ocsp_requests(self) -> list[dict[str, Any]]:
        """What the OCSP requests since the last call carried (and whether by GET or POST)."""
        out = []
        for seen in self.rec.take():
            req = seen.ocsp_request()
            if req is not None:
                out.append({**ocsp_facts(req), "method": seen.method})
        return out

    def crl_paths(self) -> list[str]:
        return [s.path for s in self.rec.take() if s.path.startswith("/crl/")]

    def f(self, name: str) -> str:
        return str(self.work / name)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from jpki_mock.crl.publisher import CrlDeps, Publisher

    base = tmp_path_factory.mktemp("clients")
    work = base / "work"
    work.mkdir()
    with Recorder() as rec:
        srv = Server(base / "data", {"JPKI_MOCK_BASE_URL": rec.base, "JPKI_MOCK_CRL_DELTA": "1"}, workers=1)
        srv.init()
        srv.start()
        rec.target = srv.base
        rt = Runtime.open(load_config(srv.env))
        try:
            cards = CardService(rt.authority)
            rows = {}
            for name, person in (("good", "良好\u3000一郎"), ("late", "失効\u3000二郎")):
                holder = rt.authority.create_holder({**HOLDER, "name": person}).id
                rows[name] = cards.create(holder, auth_pin="1234", sign_password="CLIENTS1").certificates["sign"]
                pem = x509.load_der_x509_certificate(rows[name].der).public_bytes(serialization.Encoding.PEM)
                (work / f"{name}.pem").write_bytes(pem)
            (work / "ca.pem").write_bytes(
                rt.authority.issuer("sign").certificate.public_bytes(serialization.Encoding.PEM))
            publisher = Publisher(CrlDeps.of(rt))
            publisher.publish_many(publisher.select("sign", None, False))  # complete CRLs: late is good in them
            rt.authority.revoke("sign", rows["late"].serial, "keyCompromise")
            time.sleep(1)  # the delta's thisUpdate after the revocation, at one-second resolution
            publisher.publish_many(publisher.select("sign", "13101", True))
            for name, path in (("base", PARTITION), ("delta", DELTA), ("full", "/crl/sign/g1/full.crl")):
                der = requests.get(srv.base + path, timeout=30).content
                (work / f"{name}.crl").write_bytes(der)
                (work / f"{name}.crl.pem").write_bytes(
                    x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
            yield Lab(rec, srv, work)
        finally:
            rt.close()
            srv.stop()


def test_the_delta_alone_lists_the_late_revocation(lab):
    base = x509.load_der_x509_crl((lab.work / "base.crl").read_bytes())
    delta = x509.load_der_x509_crl((lab.work / "delta.crl").read_bytes())
    late = x509.load_pem_x509_certificate((lab.work / "late.pem").read_bytes()).serial_number
    assert base.get_revoked_certificate_by_serial_number(late) is None
    assert delta.get_revoked_certificate_by_serial_number(late) is not None
    assert base.extensions.get_extension_for_class(x509.IssuingDistributionPoint).critical
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).critical


# ---------------------------------------------------------------- OpenSSL
def test_openssl(lab):
    ca, good, late = lab.f("ca.pem"), lab.f("good.pem"), lab.f("late.pem")
    # partition CRL with its critical IDP: used
    out = lab.run("openssl", "verify", "-crl_check", "-CAfile", ca, "-CRLfile", lab.f("base.crl.pem"), good, late)
    assert f"{good}: OK" in out and f"{late}: OK" in out  # the base alone does not know the late revocation
    # deltas only when asked: -use_deltas -extended_crl
    out = lab.run("openssl", "verify", "-crl_check", "-use_deltas", "-extended_crl", "-CAfile", ca,
                  "-CRLfile", lab.f("base.crl.pem"), "-CRLfile", lab.f("delta.crl.pem"), late, ok=False)
    assert "error 23 at 0 depth lookup: certificate revoked" in out
    # -crl_download fetches the CRL named in the certificate (the partition CRL)
    lab.rec.take()
    assert f"{good}: OK" in lab.run("openssl", "verify", "-crl_check", "-crl_download", "-CAfile", ca, good)
    assert lab.crl_paths() == [PARTITION]
    # OCSP: a nonce by default, SHA-1 CertID unless told -sha256
    out = lab.run("openssl", "ocsp", "-issuer", ca, "-cert", good, "-url", lab.rec.base + "/ocsp", "-CAfile", ca)
    assert "Response verify OK" in out and f"{good}: good" in out
    out = lab.run("openssl", "ocsp", "-sha256", "-issuer", ca, "-cert", good, "-url", lab.rec.base + "/ocsp",
                  "-CAfile", ca)
    assert "Response verify OK" in out and f"{good}: good" in out
    assert lab.ocsp_requests() == [{"nonce": True, "hashes": ["sha1"], "method": "POST"},
                                   {"nonce": True, "hashes": ["sha256"], "method": "POST"}]


# ---------------------------------------------------------------- Java
def test_java(lab):
    classes = compile_verifier(lab.work / "classes")
    cases = [("good", "ocsp", lab.f("good.pem"), [lab.f("ca.pem")], "-")]
    lab.rec.take()
    rows, table = run_verifier(classes, lab.work / "c1.tsv", cases)
    assert rows["good", "ocsp"] == ("valid", "-"), table
    # no nonce unless -Djdk.security.certpath.ocspNonce=true; SHA-1 CertID; GET when it fits
    assert lab.ocsp_requests() == [{"nonce": False, "hashes": ["sha1"], "method": "GET"}]
    rows, table = run_verifier(classes, lab.work / "c2.tsv", cases, "-Djdk.security.certpath.ocspNonce=true")
    assert rows["good", "ocsp"] == ("valid", "-"), table
    assert [r["nonce"] for r in lab.ocsp_requests()] == [True]
    # the partition CRL is used; the delta is not fetched, so the late revocation goes unseen
    rows, table = run_verifier(classes, lab.work / "c3.tsv", [
        ("good", "crl", lab.f("good.pem"), [lab.f("ca.pem")], "-"),
        ("late", "crl", lab.f("late.pem"), [lab.f("ca.pem")], "-")])
    assert rows["good", "crl"] == ("valid", "-") and rows["late", "crl"] == ("valid", "-"), table
    assert set(lab.crl_paths()) == {PARTITION}


# ---------------------------------------------------------------- GnuTLS
def test_gnutls(lab):
    ca = lab.f("ca.pem")

    def certtool(cert: str, crl: str) -> str:
        return lab.run("certtool", "--verify", "--load-ca-certificate", ca, "--load-crl", crl, "--infile", cert,
                       ok=False)

    assert "The certificate is trusted" in certtool(lab.f("good.pem"), lab.f("base.crl.pem"))  # critical IDP: used
    assert "The certificate is trusted" in certtool(lab.f("late.pem"), lab.f("base.crl.pem"))
    # a delta given with the base is read as one more CRL of the issuer: its entries count
    both = lab.work / "base-and-delta.pem"
    both.write_text((lab.work / "base.crl.pem").read_text() + (lab.work / "delta.crl.pem").read_text())
    assert "The certificate chain is revoked" in certtool(lab.f("late.pem"), str(both))
    lab.rec.take()
    for extra in ([], ["--nonce"]):
        out = lab.run("ocsptool", "--ask", *extra, "--load-issuer", ca, "--load-cert", lab.f("good.pem"),
                      "--load-trust", ca)
        assert "Verifying OCSP Response: Success" in out and "Certificate Status: good" in out, out
    out = lab.run("ocsptool", "--ask", "--load-issuer", ca, "--load-cert", lab.f("late.pem"), "--load-trust", ca)
    assert "Certificate Status: revoked" in out and "Revocation time:" in out, out  # it prints no reason
    assert lab.ocsp_requests() == [{"nonce": False, "hashes": ["sha1"], "method": "POST"},
                                   {"nonce": True, "hashes": ["sha1"], "method": "POST"},
                                   {"nonce": False, "hashes": ["sha1"], "method": "POST"}]


# ---------------------------------------------------------------- NSS
def nss_db(lab, name: str) -> str:
    """A new NSS database trusting the JPKI signature CA."""
    db = f"sql:{lab.work / name}"
    (lab.work / name).mkdir()
    lab.run("certutil", "-N", "-d", db, "--empty-password")
    lab.run("certutil", "-A", "-d", db, "-n", "jpki-sign", "-t", "C,C,C", "-i", lab.f("ca.pem"))
    return db


def test_nss_crlutil(lab):
    db = nss_db(lab, "nss-crls")
    # crlutil refuses the partition CRL (critical IDP) and the delta; the full CRL imports
    for name in ("base", "delta"):
        out = lab.run("crlutil", "-I", "-d", db, "-i", lab.f(f"{name}.crl"), "-t", "1", ok=False)
        assert "SEC_ERROR_CRL_UNKNOWN_CRITICAL_EXTENSION" in out
    lab.run("crlutil", "-I", "-d", db, "-i", lab.f("full.crl"), "-t", "1")
    assert "jpki-sign" in lab.run("crlutil", "-L", "-d", db)


def test_nss_vfychain(lab):
    db = nss_db(lab, "nss-chain")

    def vfychain(cert: str, *flags: str) -> str:
        return lab.run("vfychain", "-d", db, "-a", *flags, "-u", "4", lab.f(cert), ok=False)

    # the classic verifier refuses the critical certificatePolicies; libpkix (-pp) processes it
    assert "-8151" in vfychain("good.pem")  # SEC_ERROR_UNKNOWN_CRITICAL_EXTENSION
    assert "Chain is good!" in vfychain("good.pem", "-pp")
    ocsp_leaf = ("-pp", "-g", "leaf", "-m", "ocsp", "-s", "failIfNoInfo")
    lab.rec.take()
    assert "Chain is good!" in vfychain("good.pem", *ocsp_leaf)
    assert "-8180" in vfychain("late.pem", *ocsp_leaf)  # SEC_ERROR_REVOKED_CERTIFICATE
    assert lab.ocsp_requests() == [{"nonce": False, "hashes": ["sha1"], "method": "GET"}] * 2
    # CRL checking downloads the partition CRL but cannot use it (critical IDP): even the good
    # certificate is reported revoked
    out = vfychain("good.pem", "-pp", "-g", "leaf", "-m", "crl", "-s", "failIfNoInfo")
    assert "-8180" in out and "Chain is good!" not in out
    assert lab.crl_paths() == [PARTITION]


# ---------------------------------------------------------------- pyHanko certvalidator, pyca/cryptography
def _load(path: Path) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(asn1_pem.unarmor(path.read_bytes())[2])


def _validate(lab, name: str, rule: RevocationCheckingRule, **context: Any) -> str:
    policy = CertRevTrustPolicy(RevocationCheckingPolicy(rule, RevocationCheckingRule.NO_CHECK))
    ctx = ValidationContext(trust_roots=[_load(lab.work / "ca.pem")], revinfo_policy=policy, **context)
    try:
        asyncio.run(CertificateValidator(_load(lab.work / f"{name}.pem"), validation_context=ctx)
                    .async_validate_usage(set()))
    except pv_errors.RevokedError as err:
        return f"revoked {err.reason.native}"
    except pv_errors.PathValidationError as err:
        return f"{type(err).__name__}: {err}"
    return "valid"


def test_pyhanko_certvalidator(lab):
    lab.rec.take()
    fetching = {"allow_fetching": True, "fetchers": RequestsFetcherBackend().get_fetchers()}
    assert _validate(lab, "good", RevocationCheckingRule.OCSP_REQUIRED, **fetching) == "valid"
    assert _validate(lab, "late", RevocationCheckingRule.OCSP_REQUIRED, **fetching) == "revoked key_compromise"
    sha256 = Fetchers(ocsp_fetcher=RequestsOCSPFetcher(certid_hash_algo="sha256"),
                      crl_fetcher=fetching["fetchers"].crl_fetcher, cert_fetcher=fetching["fetchers"].cert_fetcher)
    assert _validate(lab, "good", RevocationCheckingRule.OCSP_REQUIRED, allow_fetching=True, fetchers=sha256) == "valid"
    assert lab.ocsp_requests() == [{"nonce": True, "hashes": ["sha1"], "method": "POST"}] * 2 + [
        {"nonce": True, "hashes": ["sha256"], "method": "POST"}]
    # The base CRL names its delta (FreshestCRL); certvalidator then requires the delta but only
    # fetches deltas a certificate names, so fetching alone ends "insufficient revocation info".
    out = _validate(lab, "good", RevocationCheckingRule.CRL_REQUIRED, **fetching)
    assert "Delta CRL matching Freshest CRL extension not available" in out
    assert lab.crl_paths() == [PARTITION]
    # Given base and delta, it applies both: the partition CRL (critical IDP) and the delta.
    crls = {"crls": [(lab.work / "base.crl").read_bytes(), (lab.work / "delta.crl").read_bytes()]}
    assert _validate(lab, "good", RevocationCheckingRule.CRL_REQUIRED, **crls) == "valid"
    assert _validate(lab, "late", RevocationCheckingRule.CRL_REQUIRED, **crls) == "revoked key_compromise"


def test_pyca_cryptography(lab):
    """pyca/cryptography builds and parses; it has no revocation checking of its own."""
    ca = x509.load_pem_x509_certificate((lab.work / "ca.pem").read_bytes())
    good = x509.load_pem_x509_certificate((lab.work / "good.pem").read_bytes())
    nonce = b"\x01" * 16
    req = (ocsp.OCSPRequestBuilder().add_certificate(good, ca, hashes.SHA256())
           .add_extension(x509.OCSPNonce(nonce), critical=False).build())
    res = requests.post(lab.rec.base + "/ocsp", data=req.public_bytes(serialization.Encoding.DER),
                        headers={"Content-Type": "application/ocsp-request"}, timeout=30)
    answer = ocsp.load_der_ocsp_response(res.content)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD and answer.hash_algorithm.name == "sha256"
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    base = x509.load_der_x509_crl((lab.work / "base.crl").read_bytes())
    assert base.is_signature_valid(ca.public_key())
    assert not hasattr(x509.verification.PolicyBuilder(), "revocation")  # no CRL/OCSP in its verifier


# ---------------------------------------------------------------- Node
def test_node(lab):
    script = lab.work / "check.js"
    script.write_text(
        "const crypto = require('crypto'); const fs = require('fs');\n"
        "const c = new crypto.X509Certificate(fs.readFileSync(process.argv[2]));\n"
        "const ca = new crypto.X509Certificate(fs.readFileSync(process.argv[3]));\n"
        "console.log(JSON.stringify({issued: c.checkIssued(ca), verify: c.verify(ca.publicKey),\n"
        "  ocspUrl: c.infoAccess, crlApi: typeof crypto.X509Crl, ocspApi: typeof crypto.OCSPRequest}));\n")
    out = lab.run("node", str(script), lab.f("good.pem"), lab.f("ca.pem"))
    assert '"issued":true' in out and '"verify":true' in out
    assert f"OCSP - URI:{lab.rec.base}/ocsp" in out  # AIA read, but nothing in Node acts on it
    assert '"crlApi":"undefined"' in out and '"ocspApi":"undefined"' in out
