"""Helpers shared by the OCSP tests and the interop tests: certificates to ask about, requests
built by independent libraries (pyca/cryptography, asn1crypto), and an in-process WSGI call."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from asn1crypto import algos as a_algos
from asn1crypto import core as a_core
from asn1crypto import ocsp as a_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

HOLDER = {"name": "山田\u3000太郎", "date_of_birth": "319801231", "gender": "1", "address": "東京都千代田区千代田1-1"}
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = _KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
HASHES = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


@dataclass
class Issued:
    kind: str
    serial: int
    cert: x509.Certificate
    issuer: x509.Certificate
    issuer_id: int


def issue(rt, kinds: str = "both", n: int = 1) -> list[Issued]:
    """``n`` holders, each with certificates of ``kinds``; keys are not generated per holder (fast)."""
    out = []
    for i in range(n):
        holder = rt.authority.create_holder({**HOLDER, "name": f"山田\u3000{i}郎"})
        for item in rt.authority.issue(holder.id, kinds, public_key=PUBLIC_PEM):
            out.append(Issued(item.certificate.kind, item.certificate.serial,
                              x509.load_der_x509_certificate(item.certificate.der), item.issuer.certificate,
                              item.issuer.id))
    return out


def request_der(item: Issued, alg: str = "sha1", nonce: bytes | None = None) -> bytes:
    """A single-CertID request built by pyca/cryptography."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(item.cert, item.issuer, HASHES[alg])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def cert_id(issuer: x509.Certificate, serial: int, alg: str = "sha1") -> a_ocsp.CertId:
    """A CertID built by asn1crypto (any serial, any algorithm)."""
    from asn1crypto import x509 as a_x509

    a_issuer = a_x509.Certificate.load(issuer.public_bytes(serialization.Encoding.DER))
    name_hash = getattr(a_issuer.subject, f"{alg}") if alg in ("sha1", "sha256") else None
    import hashlib

    name_hash = hashlib.new(alg, a_issuer.subject.dump()).digest()
    key_hash = hashlib.new(alg, a_issuer.public_key["public_key"].contents[1:]).digest()
    return a_ocsp.CertId({
        "hash_algorithm": a_algos.DigestAlgorithm({"algorithm": alg}),
        "issuer_name_hash": name_hash, "issuer_key_hash": key_hash, "serial_number": serial,
    })


def multi_request(cert_ids: list[a_ocsp.CertId], nonce: bytes | None = None) -> bytes:
    """A request with several CertIDs, built by asn1crypto (pyca/cryptography cannot)."""
    tbs = {"request_list": [{"req_cert": c} for c in cert_ids]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": a_core.OctetString(nonce)}]
    return a_ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def get_path(der_bytes: bytes) -> str:
    return "/" + base64.b64encode(der_bytes).decode()


class Resp:
    def __init__(self, status: str, headers: list, body: bytes):
        self.status_line = status
        self.status = int(status.split()[0])
        self.headers = dict(headers)
        self.body = body

    @property
    def ocsp(self) -> ocsp.OCSPResponse:
        return ocsp.load_der_ocsp_response(self.body)

    @property
    def asn1(self) -> a_ocsp.OCSPResponse:
        return a_ocsp.OCSPResponse.load(self.body)


def call(app, method: str = "GET", path: str = "/", body: bytes = b"", headers: dict | None = None,
         content_type: str | None = "application/ocsp-request") -> Resp:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)) if method == "POST" else ""}
    if method == "POST" and content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    for k, v in (headers or {}).items():
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    seen = {}

    def start_response(status, hdrs, exc_info=None):
        seen["status"], seen["headers"] = status, hdrs

    out = b"".join(app(environ, start_response))
    return Resp(seen["status"], seen["headers"], out)
