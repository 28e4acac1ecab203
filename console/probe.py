"""Ask the mock's own OCSP responder about a certificate, in process, and keep the exact bytes.

The console calls the same responder WSGI app the server mounts at ``/ocsp`` (handed over by
the composition root), so what a student sees is byte for byte what a relying party gets:
GET puts the base64 request in the path (RFC 6960 appendix A.1), POST sends it as the body
with ``application/ocsp-request``.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from werkzeug.test import EnvironBuilder, run_wsgi_app

from jpki_mock.errors import InvalidInput
from jpki_mock.vocab import Reason

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}
METHODS = ("GET", "POST")


@dataclass
class Exchange:
    method: str
    url: str
    request: bytes
    status: int
    content_type: str
    response: bytes
    cert_status: str
    reason: str | None


def ask(app: WSGIApp, cert_der: bytes, issuer_der: bytes, *, method: str, nonce: bool, hash_name: str,
        base_url: str) -> Exchange:
    if method not in METHODS:
        raise InvalidInput(f"{method!r} is not a method", field="method", allowed=list(METHODS))
    if hash_name not in HASHES:
        raise InvalidInput(f"{hash_name!r} is not a CertID hash", field="hash", allowed=list(HASHES))
    cert = x509.load_der_x509_certificate(cert_der)
    issuer = x509.load_der_x509_certificate(issuer_der)
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, HASHES[hash_name]())
    if nonce:  # RFC 8954: 1 to 32 octets; 16 random ones, as most clients send
        builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
    der = builder.build().public_bytes(serialization.Encoding.DER)
    if method == "GET":
        path = "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
        env = EnvironBuilder(method="GET", path=path, base_url=base_url + "/ocsp").get_environ()
    else:
        path = ""
        env = EnvironBuilder(method="POST", path="/", base_url=base_url + "/ocsp", data=der,
                             content_type="application/ocsp-request").get_environ()
    app_iter, status, headers = run_wsgi_app(app, env)
    try:
        body = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    cert_status, reason = _status(body)
    return Exchange(method, f"{base_url}/ocsp{path}", der, int(status.split()[0]),
                    headers.get("Content-Type", ""), body, cert_status, reason)


def _status(body: bytes) -> tuple[str, str | None]:
    """The answer's certStatus (or the OCSP error) as pyca reads it: an independent parser."""
    try:
        resp = ocsp.load_der_ocsp_response(body)
    except ValueError:
        return "not an OCSP response", None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return resp.response_status.name.lower(), None
    status = resp.certificate_status.name.lower()
    if resp.revocation_reason is None:
        return status, None
    # RFC 5280 section 5.3.1's name (affiliationChanged), as the API and the docs spell it.
    names = {r.x509_flag: r.rfc_name for r in Reason}
    return status, names.get(resp.revocation_reason, resp.revocation_reason.name)
