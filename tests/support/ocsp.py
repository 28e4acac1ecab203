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

from tests.support.pki import HOLDER
from tests.support.pki import PASSPHRASE as PASSPHRASE  # re-exported for the OCSP tests
from tests.support.pki import T0 as T0
from tests.support.pki import fresh_pg_database as fresh_pg_database
from tests.support.server import Server

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


def verify(resp: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate:
    """Check the signature as a relying party would (RFC 6960 section 4.2.2.2); returns the signer."""
    import hashlib

    from asn1crypto import x509 as a_x509
    from cryptography.hazmat.primitives.asymmetric import padding

    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    signer = resp.certificates[0] if resp.certificates else issuer
    signer.public_key().verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(),
                               resp.signature_hash_algorithm)
    if resp.certificates:
        signer.verify_directly_issued_by(issuer)
        eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
        signer.extensions.get_extension_for_class(x509.OCSPNoCheck)
    spki = a_x509.Certificate.load(signer.public_bytes(serialization.Encoding.DER)).public_key
    bits = spki["public_key"].contents[1:]
    assert resp.responder_key_hash == hashlib.sha1(bits).digest()
    return signer


def start_responder(data_dir, env_extra: dict | None = None, workers: int = 2, init: bool = True,
                    args: tuple[str, ...] = ("ocsp", "serve")):
    """A real ``jpki-mock ocsp serve`` (or, with ``args``, ``serve``) process on 127.0.0.1,
    stopped by PID via ``.stop()``."""
    class Responder(Server):
        def start(self):
            # Server.start leaves its log handle to the garbage collector (a ResourceWarning,
            # an error under this suite's filterwarnings): keep it and close it on stop.
            import builtins

            real_open, handles = builtins.open, []

            def tracking_open(*a, **k):
                fh = real_open(*a, **k)
                handles.append(fh)
                return fh

            builtins.open = tracking_open
            try:
                return super().start()
            finally:
                builtins.open = real_open
                self._handles = handles

        def stop(self):
            super().stop()
            for fh in getattr(self, "_handles", []):
                fh.close()

    srv = Responder(data_dir, env_extra, workers, args=list(args))
    srv.env["JPKI_MOCK_OCSP_PORT"] = str(srv.port)  # `ocsp serve` listens on ocsp.port, `serve` on PORT
    srv.token = srv.init() if init else None
    return srv.start()


def ocsp_app(rt):
    """The responder's WSGI app (ocsp.http.OcspApp) from a runtime's parts, without the stats
    flushing thread make_app starts."""
    from jpki_mock.ocsp.http import OcspApp

    return OcspApp(rt.config, rt.clock, rt.store, rt.status, rt.keyring, rt.epoch)
