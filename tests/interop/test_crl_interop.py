"""CRL interop against a real ``jpki-mock serve``: openssl and pyhanko-certvalidator fetch over HTTP."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import requests
from asn1crypto import crl as acrl
from asn1crypto import pem as apem
from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

pytestmark = pytest.mark.server

ADDRESSES = {"13101": "東京都千代田区千代田1-1", "27100": "大阪府大阪市北区梅田1-1"}


class Admin:
    def __init__(self, srv):
        self.srv = srv
        self.headers = {"Authorization": f"Bearer {srv.token}"}
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self.holders = 0

    def call(self, method: str, path: str, **kw):
        resp = requests.request(method, f"{self.srv.base}/admin/api{path}", headers=self.headers, timeout=60, **kw)
        assert resp.status_code < 300, resp.text
        return resp.json()

    def issue(self, municipality: str) -> dict[str, dict]:
        self.holders += 1
        holder = self.call("POST", "/holders", json={
            "name": f"相互\u3000{self.holders}", "date_of_birth": "319800101", "gender": "1",
            "address": ADDRESSES[municipality]})
        issued = self.call("POST", f"/holders/{holder['id']}/certificates",
                           json={"kinds": "both", "public_key": self.public_key})
        return {c["kind"]: c for c in issued}

    def revoke(self, cert: dict, reason: str) -> None:
        self.call("POST", f"/certificates/{cert['issuer']}/{cert['serial']}/revoke", json={"reason": reason})

    def root_pem(self, kind: str) -> str:
        return requests.get(f"{self.srv.base}/admin/api/cas/{kind}/1?format=pem", headers=self.headers,
                            timeout=30).text


def fetch(url: str) -> bytes:
    resp = requests.get(url, timeout=60)
    assert resp.status_code == 200, (url, resp.text)
    return resp.content


def entries(data: bytes) -> dict[int, str]:
    out = {}
    for rc in acrl.CertificateList.load(data)["tbs_cert_list"]["revoked_certificates"]:
        out[rc["user_certificate"].native] = rc.crl_reason_value.native if rc.crl_reason_value else "unspecified"
    return out


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def start(server_factory, tmp_path, delta: bool):
    srv = server_factory(env_extra={"JPKI_MOCK_CRL_DELTA": "1" if delta else "0"})
    admin = Admin(srv)
    for kind in ("sign", "auth"):
        (tmp_path / f"{kind}-root.pem").write_text(admin.root_pem(kind))
    return srv, admin


def _write_cert(tmp_path: Path, cert: dict, name: str) -> Path:
    path = tmp_path / f"{name}.pem"
    path.write_text(cert["pem"])
    return path


def _pyhanko(cert_pem: str, root_pem: str, crls: list[bytes] = ()):
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
    from pyhanko_certvalidator.policy_decl import (
        CertRevTrustPolicy,
        RevocationCheckingPolicy,
        RevocationCheckingRule,
    )

    def load(text: str) -> ax509.Certificate:
        return ax509.Certificate.load(apem.unarmor(text.encode())[2])

    # CRLs only: the certificate's AIA also names OCSP, which is another issue's service.
    policy = CertRevTrustPolicy(RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK))

    async def run():
        async with AIOHttpFetcherBackend() as fetchers:
            context = ValidationContext(trust_roots=[load(root_pem)], allow_fetching=True, revinfo_policy=policy,
                                        fetchers=fetchers, crls=list(crls))
            validator = CertificateValidator(load(cert_pem), validation_context=context)
            return await validator.async_validate_usage(set())

    return asyncio.run(run())


def test_openssl_and_pyhanko_check_revocation_through_the_crldp(server_factory, tmp_path):
    srv, admin = start(server_factory, tmp_path, delta=False)  # the JPKI configuration: no delta CRLs
    good, revoked, held = admin.issue("13101"), admin.issue("13101"), admin.issue("27100")
    admin.revoke(revoked["sign"], "keyCompromise")
    admin.revoke(held["auth"], "certificateHold")
    # The server published every CRL in use when it started (the schedule's first pass: full and ARL,
    # no certificate yet); the two partitions the certificates name are in use now: publish them.
    streams = {s["stream"]: s for s in admin.call("GET", "/crl/streams")}
    assert {f"{k}-g1/{p}" for k in ("sign", "auth") for p in ("full", "arl", "13101", "27100")} == set(streams)
    assert all(streams[f"{k}-g1/{p}"]["number"] == 1 for k in ("sign", "auth") for p in ("full", "arl"))
    for kind, municipality in (("sign", "13101"), ("auth", "27100")):
        (published,) = admin.call("POST", "/crl/publish", json={"ca": kind, "partition": municipality})["published"]
        assert published["number"] >= 1 and published["entries"] == 1  # the schedule may have published it once

    # openssl verify -crl_check with the partition CRL named by the certificate's CRLDP (fetched as PEM).
    for kind, municipality in (("sign", "13101"), ("auth", "27100")):
        (tmp_path / f"{kind}-{municipality}.pem").write_bytes(fetch(f"{srv.base}/crl/{kind}/g1/{municipality}.pem"))

    def verify(cert: dict, name: str):
        kind = cert["kind"]
        return openssl("verify", "-crl_check", "-CAfile", str(tmp_path / f"{kind}-root.pem"),
                       "-CRLfile", str(tmp_path / f"{kind}-{cert['municipality']}.pem"),
                       str(_write_cert(tmp_path, cert, name)))

    bad = verify(revoked["sign"], "revoked")
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    ok = verify(good["sign"], "good")
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
    on_hold = verify(held["auth"], "held")
    assert "certificate revoked" in on_hold.stdout + on_hold.stderr

    # pyhanko-certvalidator finds the CRL through the HTTP URI in the CRLDP.
    from pyhanko_certvalidator.errors import RevokedError

    sign_root = (tmp_path / "sign-root.pem").read_text()
    auth_root = (tmp_path / "auth-root.pem").read_text()
    with pytest.raises(RevokedError) as err:
        _pyhanko(revoked["sign"]["pem"], sign_root)
    assert err.value.reason.native == "key_compromise"
    with pytest.raises(RevokedError) as err:
        _pyhanko(held["auth"]["pem"], auth_root)
    assert err.value.reason.native == "certificate_hold"
    path = _pyhanko(good["sign"]["pem"], sign_root)
    assert path.leaf.serial_number == good["sign"]["serial"]


def test_delta_plus_base_gives_the_full_crls_status(server_factory, tmp_path):
    srv, admin = start(server_factory, tmp_path, delta=True)
    # Every CRL the server published at start-up (complete, delta, ARL; no partition is in use yet)
    # verifies with openssl.
    streams = admin.call("GET", "/crl/streams")
    assert {s["stream"] for s in streams} == {
        f"{k}-g1/{n}" for k in ("sign", "auth") for n in ("full", "full-delta", "arl")}
    assert all(s["number"] for s in streams)
    for s in streams:
        path = tmp_path / "one.crl"
        path.write_bytes(fetch(s["url"]))
        out = openssl("crl", "-inform", "DER", "-in", str(path), "-noout", "-verify",
                      "-CAfile", str(tmp_path / f"{s['issuer'].split('-')[0]}-root.pem"))
        assert out.returncode == 0 and "verify OK" in out.stderr, (s["stream"], out.stderr)

    a, b, c = admin.issue("13101"), admin.issue("13101"), admin.issue("13101")
    admin.revoke(a["sign"], "keyCompromise")
    admin.revoke(c["sign"], "certificateHold")
    admin.call("POST", "/crl/publish", json={"ca": "sign", "partition": "13101"})
    base = fetch(f"{srv.base}/crl/sign/g1/13101.crl")

    admin.revoke(b["sign"], "affiliationChanged")
    admin.revoke(c["sign"], "keyCompromise")
    admin.call("POST", "/crl/publish", json={"ca": "sign", "partition": "13101", "delta": True})
    delta = fetch(f"{srv.base}/crl/sign/g1/13101-delta.crl")
    admin.call("POST", "/crl/publish", json={"ca": "sign", "partition": "13101", "delta": False})
    full = fetch(f"{srv.base}/crl/sign/g1/13101.crl")

    assert {**entries(base), **entries(delta)} == entries(full) == {
        a["sign"]["serial"]: "key_compromise", b["sign"]["serial"]: "affiliation_changed",
        c["sign"]["serial"]: "key_compromise"}
    assert b["sign"]["serial"] not in entries(base)

    # openssl applies the delta to the base (X509_V_FLAG_USE_DELTAS): b is revoked only in the delta.
    (tmp_path / "base.crl").write_bytes(base)
    (tmp_path / "delta.crl").write_bytes(delta)
    cert = _write_cert(tmp_path, b["sign"], "b")
    root = str(tmp_path / "sign-root.pem")
    out = openssl("verify", "-crl_check", "-use_deltas", "-extended_crl", "-CAfile", root,
                  "-CRLfile", str(tmp_path / "base.crl"), "-CRLfile", str(tmp_path / "delta.crl"), str(cert))
    assert "certificate revoked" in out.stdout + out.stderr, out.stdout + out.stderr
    out = openssl("verify", "-crl_check", "-CAfile", root, "-CRLfile", str(tmp_path / "base.crl"), str(cert))
    assert out.returncode == 0, out.stdout + out.stderr

    # pyhanko-certvalidator fetches the base from the CRLDP and, since the base names a delta in its
    # FreshestCRL, insists on a delta; it only fetches deltas named by the certificate, so hand it over.
    from pyhanko_certvalidator.errors import RevokedError

    with pytest.raises(RevokedError) as err:
        _pyhanko(b["sign"]["pem"], (tmp_path / "sign-root.pem").read_text(), crls=[delta])
    assert err.value.reason.native == "affiliation_changed"
