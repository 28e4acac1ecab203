"""Interop against a running `jpki-mock ocsp serve`: openssl ocsp, pyhanko-certvalidator,
pyca/cryptography GET requests; and the /ocsp mount of the combined server with access control."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from jpki_mock.config import load_config
from jpki_mock.runtime import Runtime
from tests.support.ocsp import PASSPHRASE, issue, request_der, start_responder, verify

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def responder(tmp_path_factory):
    srv = start_responder(tmp_path_factory.mktemp("interop") / "data")
    # Certificates name this responder in their AIA (POST ignores the path).
    rt = Runtime.open(load_config({}, data_dir=srv.data_dir, key_passphrase=PASSPHRASE, base_url=srv.base))
    srv.rt = rt
    yield srv
    rt.close()
    srv.stop()


def _pem(path: Path, cert) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def files(responder, tmp_path):
    """PEM files for one holder's certificates and their issuers."""
    out = {}
    for item in issue(responder.rt):
        out[item.kind] = (item, _pem(tmp_path / f"{item.kind}.pem", item.cert),
                          _pem(tmp_path / f"{item.kind}-ca.pem", item.issuer))
    return out


def openssl_ocsp(responder, *args: str) -> str:
    proc = subprocess.run(["openssl", "ocsp", "-url", responder.base + "/", *args], capture_output=True, text=True,
                          timeout=30)
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("kind", ["sign", "auth"])
@pytest.mark.parametrize("nonce", [[], ["-no_nonce"]], ids=["default-nonce", "no-nonce"])
def test_openssl_good_revoked_unknown(responder, files, kind, nonce):
    item, cert, ca = files[kind]
    out = openssl_ocsp(responder, "-issuer", str(ca), "-cert", str(cert), "-CAfile", str(ca), *nonce)
    assert "Response verify OK" in out and f"{cert}: good" in out, out
    if not nonce:
        assert "WARNING" not in out, out  # the nonce came back
    responder.rt.authority.revoke(kind, item.serial, "keyCompromise")
    out = openssl_ocsp(responder, "-issuer", str(ca), "-cert", str(cert), "-CAfile", str(ca), *nonce)
    assert "Response verify OK" in out and f"{cert}: revoked" in out and "Reason: keyCompromise" in out, out
    out = openssl_ocsp(responder, "-issuer", str(ca), "-serial", "99999999", "-CAfile", str(ca), *nonce)
    assert "Response verify OK" in out and "99999999: unknown" in out, out


def test_openssl_hold_shows_certificate_hold(responder, files):
    item, cert, ca = files["auth"]
    responder.rt.authority.revoke("auth", item.serial, "certificateHold")
    out = openssl_ocsp(responder, "-issuer", str(ca), "-cert", str(cert), "-CAfile", str(ca))
    assert f"{cert}: revoked" in out and "Reason: certificateHold" in out, out


def test_openssl_request_sent_by_get(responder, files, tmp_path):
    """openssl builds the request; it travels by GET in the path; openssl verifies the answer."""
    _item, cert, ca = files["sign"]
    req = tmp_path / "req.der"
    subprocess.run(["openssl", "ocsp", "-issuer", str(ca), "-cert", str(cert), "-no_nonce", "-reqout", str(req)],
                   check=True, capture_output=True)
    url = responder.base + "/" + base64.b64encode(req.read_bytes()).decode()
    # One keep-alive connection, so both GETs reach the same worker: each worker pre-signs its
    # own answer (its own producedAt), so another worker's ETag would not match.
    session = requests.Session()
    resp = session.get(url, timeout=10)
    assert resp.status_code == 200 and "max-age=" in resp.headers["Cache-Control"]
    (tmp_path / "resp.der").write_bytes(resp.content)
    out = subprocess.run(["openssl", "ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer", str(ca), "-cert",
                          str(cert), "-CAfile", str(ca), "-no_nonce"], capture_output=True, text=True).stdout
    assert f"{cert}: good" in out, out
    assert session.get(url, headers={"If-None-Match": resp.headers["ETag"]}, timeout=10).status_code == 304


@pytest.mark.parametrize("alg", ["sha1", "sha256", "sha384", "sha512"])
def test_cryptography_get_requests_parse_and_verify(responder, files, alg):
    item = files["auth"][0]
    der = request_der(item, alg)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        resp = requests.get(responder.base + "/" + encode(der).decode().rstrip("="), timeout=10)
        r = ocsp.load_der_ocsp_response(resp.content)
        assert r.certificate_status == ocsp.OCSPCertStatus.GOOD and r.hash_algorithm.name == alg
        verify(r, item.issuer)


def test_openssl_each_generation_after_rollover(responder, files, tmp_path):
    old_item, old_cert, old_ca = files["sign"]
    out = responder.cli("ca", "rollover", "--kind", "sign").stdout.decode()
    assert "created sign-g" in out
    # a fresh runtime sees the new generation (Authority caches the generations it loaded)
    rt = Runtime.open(responder.rt.config)
    new_item = issue(rt, "sign")[0]
    rt.close()
    assert new_item.issuer_id != old_item.issuer_id
    new_cert, new_ca = _pem(tmp_path / "new.pem", new_item.cert), _pem(tmp_path / "new-ca.pem", new_item.issuer)
    out = openssl_ocsp(responder, "-issuer", str(new_ca), "-cert", str(new_cert), "-CAfile", str(new_ca))
    assert "Response verify OK" in out and f"{new_cert}: good" in out, out
    out = openssl_ocsp(responder, "-issuer", str(old_ca), "-cert", str(old_cert), "-CAfile", str(old_ca))
    assert "Response verify OK" in out and f"{old_cert}: good" in out, out
    # the old generation's issuer does not vouch for the new generation's serials
    out = openssl_ocsp(responder, "-issuer", str(old_ca), "-cert", str(new_cert), "-CAfile", str(old_ca))
    assert "good" not in out.replace("Response verify OK", ""), out


def test_pyhanko_certvalidator_fetches_over_ocsp(responder, files):
    import asyncio

    from asn1crypto import x509 as a_x509
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import RevokedError
    from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend

    item = files["auth"][0]
    revoked = issue(responder.rt, "auth")[0]
    responder.rt.authority.revoke("auth", revoked.serial, "keyCompromise")

    def validate(it):
        root = a_x509.Certificate.load(it.issuer.public_bytes(serialization.Encoding.DER))
        ee = a_x509.Certificate.load(it.cert.public_bytes(serialization.Encoding.DER))
        # requests, not aiohttp: its sessions outlive asyncio.run and warn on collection
        ctx = ValidationContext(trust_roots=[root], allow_fetching=True, revocation_mode="require",
                                fetcher_backend=RequestsFetcherBackend())
        return asyncio.run(CertificateValidator(ee, validation_context=ctx).async_validate_usage(set()))

    path = validate(item)
    assert path.leaf.serial_number == item.serial
    with pytest.raises(RevokedError):
        validate(revoked)


def test_combined_server_mount_with_access_control(tmp_path, files):
    """The same responder mounted at /ocsp of `jpki-mock serve`, answering registered parties only."""
    srv = start_responder(tmp_path / "combined", {"JPKI_MOCK_OCSP_ACCESS_CONTROL": "true"}, workers=1,
                          args=("serve", "--no-background"))
    try:
        rt = Runtime.open(load_config({}, data_dir=srv.data_dir, key_passphrase=PASSPHRASE))
        item = issue(rt, "auth")[0]
        _, credential = rt.registry.add_relying_party("clinic", "auth")
        rt.close()
        cert, ca = _pem(tmp_path / "c.pem", item.cert), _pem(tmp_path / "ca.pem", item.issuer)
        args = ["openssl", "ocsp", "-url", srv.base + "/ocsp", "-issuer", str(ca), "-cert", str(cert),
                "-CAfile", str(ca)]
        out = subprocess.run(args, capture_output=True, text=True)
        assert "Responder Error: unauthorized" in out.stdout + out.stderr, out.stdout + out.stderr
        # OpenSSL 3 takes -header name=value
        out = subprocess.run([*args, "-header", f"Authorization=Bearer {credential}"], capture_output=True,
                             text=True)
        assert f"{cert}: good" in out.stdout, out.stdout + out.stderr
    finally:
        srv.stop()
