"""The public pages: the service index, the CPS and the CA certificates of every generation,
fetched without a token and parsed back by asn1crypto and openssl."""

from __future__ import annotations

import subprocess

from asn1crypto import pem as a_pem
from asn1crypto import x509 as a_x509

from jpki_mock.app import create_admin_app


def test_index_lists_every_generation_s_certificate_and_crls(rt):
    rt.authority.rollover("auth")
    index = create_admin_app(rt).test_client().get("/").get_json()
    assert sorted(index["ca_certificates"]) == ["auth-g1", "auth-g2", "sign-g1"]
    assert index["ca_certificates"]["auth-g2"] == {"der": "http://127.0.0.1:8080/ca/auth-g2.der",
                                                   "pem": "http://127.0.0.1:8080/ca/auth-g2.pem"}
    assert index["crls"]["sign-g1"]["full"].endswith("/crl/sign/g1/full.crl")
    assert index["cps"].endswith("/cps")


def test_index_lists_the_metrics_and_probes(rt):
    """Every URL listed answers, on the combined server the workers run."""
    from werkzeug.test import Client

    from jpki_mock.app import create_app

    index = create_admin_app(rt).test_client().get("/").get_json()
    base = "http://127.0.0.1:8080"
    assert (index["metrics"], index["healthz"], index["readyz"]) == (base + "/metrics", base + "/healthz",
                                                                     base + "/readyz")
    client = Client(create_app(rt))
    for url in (index["metrics"], index["healthz"], index["readyz"], index["ocsp"], index["cps"],
                *(u for certs in index["ca_certificates"].values() for u in certs.values())):
        assert client.get(url.removeprefix(base)).status_code == 200, url


def test_ca_certificates_download_as_der_and_pem_without_a_token(rt, tmp_path):
    client = create_admin_app(rt).test_client()
    for issuer in rt.authority.issuers():
        der = client.get(f"/ca/{issuer.kind}-g{issuer.generation}.der")
        assert der.status_code == 200 and der.mimetype == "application/pkix-cert"
        cert = a_x509.Certificate.load(der.data)
        assert cert.self_signed == "maybe" and cert.subject == cert.issuer
        assert cert.serial_number == issuer.certificate.serial_number
        pem = client.get(f"/ca/{issuer.kind}-g{issuer.generation}.pem")
        assert pem.status_code == 200
        _, _, body = a_pem.unarmor(pem.data)
        assert body == der.data
        path = tmp_path / f"{issuer.label}.pem"
        path.write_bytes(pem.data)
        # openssl checks the self-signature of the trust anchor it was handed
        done = subprocess.run(["openssl", "verify", "-CAfile", str(path), str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_unknown_certificates_are_404_with_a_json_reason(rt):
    client = create_admin_app(rt).test_client()
    r = client.get("/ca/sign-g9.der")
    assert r.status_code == 404 and r.get_json()["field"] == "path" and "sign-g1" in r.get_json()["allowed"]
    r = client.get("/ca/sign-g1.txt")
    assert r.status_code == 404 and r.get_json()["allowed"] == [".der", ".pem"]


def test_cps_is_plain_text(rt):
    r = create_admin_app(rt).test_client().get("/cps")
    assert r.status_code == 200 and r.mimetype == "text/plain" and b"test data" in r.data
