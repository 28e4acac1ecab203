"""A deliberately configurable OCSP/CRL target for testing the load generator's checks.

It answers real, signed OCSP responses (pyca/cryptography's builder) with whatever status
the test chooses, so a test can show that a wrong status is counted as a failure and a right
one is not.  Serves on 127.0.0.1 only, in a thread, stopped by the test.
"""

from __future__ import annotations

import threading
from base64 import b64decode
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from urllib.parse import unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

NOW = datetime.now(UTC).replace(microsecond=0)


def make_ca(name: str = "Fake CA") -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def build_response(request_der: bytes, ca: x509.Certificate, key, status: str, *, reason=None,
                   revoked_at: datetime | None = None, echo_nonce: bool = True,
                   next_update: timedelta = timedelta(hours=1), serial_offset: int = 0) -> bytes:
    req = ocsp.load_der_ocsp_request(request_der)
    cert_status = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
                   "unknown": ocsp.OCSPCertStatus.UNKNOWN}[status]
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        req.issuer_name_hash, req.issuer_key_hash, req.serial_number + serial_offset, req.hash_algorithm, cert_status,
        NOW - timedelta(minutes=5), NOW + next_update,
        (revoked_at or NOW - timedelta(days=1)) if status == "revoked" else None,
        reason if status == "revoked" else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
    if echo_nonce:
        try:
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value
            builder = builder.add_extension(nonce, critical=False)
        except x509.ExtensionNotFound:
            pass
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def unauthorized() -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
        serialization.Encoding.DER)


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class FakeTarget:
    """``answer(request_der) -> (http status, body)`` decides every OCSP answer."""

    def __init__(self, answer: Callable[[bytes], tuple[int, bytes]], ocsp_path: str = "/ocsp"):
        self.answer = answer
        self.ocsp_path = ocsp_path
        self.requests = 0
        self.server = make_server("127.0.0.1", 0, self.app, server_class=_Threading, handler_class=_Quiet)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def app(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ["REQUEST_METHOD"] == "POST" and path.rstrip("/") == self.ocsp_path:
            der = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        elif environ["REQUEST_METHOD"] == "GET" and path.startswith(self.ocsp_path + "/"):
            der = b64decode(unquote(path[len(self.ocsp_path) + 1:]))
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not here"]
        self.requests += 1
        code, body = self.answer(der)
        start_response(f"{code} X", [("Content-Type", "application/ocsp-response"), ("Content-Length", str(len(body)))])
        return [body]

    def __enter__(self) -> FakeTarget:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
