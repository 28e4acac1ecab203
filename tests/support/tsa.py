"""A time-stamping authority (RFC 3161) on 127.0.0.1 for the PDF tests: JPKI runs none, and a
PAdES B-T / B-LT signature needs one.  pyHanko's DummyTimeStamper answers; its certificate is
self-signed with the critical id-kp-timeStamping extended key usage RFC 3161 section 2.3
requires, and the tests trust it directly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from tests.support.wsgi import LocalServer


def tsa_certificate() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jpki-mock test TSA")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


class LocalTsa:
    """``with LocalTsa() as tsa``: ``tsa.url`` answers timestamp requests; ``tsa.der`` is the
    certificate to trust."""

    def __init__(self) -> None:
        cert, key = tsa_certificate()
        self.der = cert.public_bytes(serialization.Encoding.DER)
        key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        self.stamper = DummyTimeStamper(asn1_x509.Certificate.load(self.der),
                                        asn1_keys.PrivateKeyInfo.load(key_der))
        self.requests = 0
        self.server = LocalServer(self.app)
        self.url = f"{self.server.base}/tsa"

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["REQUEST_METHOD"] != "POST":
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"POST a TimeStampReq"]
        req = tsp.TimeStampReq.load(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        self.requests += 1
        body = asyncio.run(self.stamper.async_request_tsa_response(req)).dump()
        start_response("200 OK", [("Content-Type", "application/timestamp-reply"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    def __enter__(self) -> LocalTsa:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
