"""A recording reverse proxy on 127.0.0.1 in front of a running mock, for measuring clients.

The mock is started with ``base_url`` = the proxy's URL, so the certificates it issues name the
proxy in their AIA (OCSP) and CRL distribution points: every client, following the URLs in a
certificate as it would in production, goes through the proxy, which keeps each request (path
and body) and forwards it unchanged.  A test then reads what the client really sent: whether
its OCSP request carries a nonce, which hash its CertID uses, which CRLs it fetched.
"""

from __future__ import annotations

import threading
from base64 import b64decode
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import requests
from asn1crypto import ocsp as asn1_ocsp

from tests.support.wsgi import LocalServer


@dataclass
class Seen:
    method: str
    path: str
    body: bytes

    def ocsp_request(self) -> asn1_ocsp.OCSPRequest | None:
        """The OCSP request carried by POST body or GET path (RFC 6960 appendix A.1), if any."""
        if not self.path.startswith("/ocsp"):
            return None
        der = self.body if self.method == "POST" else b64decode(unquote(self.path.split("/", 2)[2]))
        return asn1_ocsp.OCSPRequest.load(der)


def ocsp_facts(req: asn1_ocsp.OCSPRequest) -> dict[str, Any]:
    """{"nonce": bool, "hashes": [CertID hash algorithm names]}, read with asn1crypto."""
    tbs = req["tbs_request"]
    nonce = any(e["extn_id"].native == "nonce" for e in (tbs["request_extensions"] or []))
    hashes = [r["req_cert"]["hash_algorithm"]["algorithm"].native for r in tbs["request_list"]]
    return {"nonce": nonce, "hashes": hashes}


class Recorder:
    """``with Recorder() as rec``: ``rec.base`` is the proxy's URL; ``rec.target`` must be set to
    the mock's base URL before the first request; ``rec.seen`` lists the requests."""

    def __init__(self) -> None:
        self.target = ""
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.server = LocalServer(self.app)
        self.base = self.server.base

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) if method == "POST" else b""
        with self._lock:
            self.seen.append(Seen(method, path, body))
        headers = {k: environ[f"HTTP_{k.upper().replace('-', '_')}"] for k in ("Accept",)
                   if f"HTTP_{k.upper().replace('-', '_')}" in environ}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        res = requests.request(method, self.target + path + (f"?{query}" if query else ""), data=body or None,
                               headers=headers, timeout=30)
        start_response(f"{res.status_code} {res.reason}", [
            (k, v) for k, v in res.headers.items() if k.lower() in ("content-type", "cache-control", "etag")
        ] + [("Content-Length", str(len(res.content)))])
        return [res.content]

    def take(self) -> list[Seen]:
        """The requests seen since the last call."""
        with self._lock:
            out, self.seen = self.seen, []
        return out

    def __enter__(self) -> Recorder:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
