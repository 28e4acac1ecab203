"""The benchmark's ceiling: a bare WSGI app that answers every request with fixed bytes.

Run under the same server (granian WSGI) with the same worker count as the OCSP responder,
it measures what the server, the kernel's loopback and the load generator allow on this
machine when the application does nothing.  What it sends is what the responder sent for
one request: the body (a real OCSP response, the file named by ``JPKI_BENCH_CEILING_BODY``)
and the application's headers (the JSON list of ``[name, value]`` pairs in the file named by
``JPKI_BENCH_CEILING_HEADERS``).  So the server converts, the kernel carries and the load
generator parses and checks exactly as much per answer as against the responder: only the
application's own work differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from wsgiref.util import is_hop_by_hop

BODY_ENV = "JPKI_BENCH_CEILING_BODY"
HEADERS_ENV = "JPKI_BENCH_CEILING_HEADERS"
#: headers granian writes on every answer itself, besides the hop-by-hop ones (RFC 9110 section 7.6.1)
SERVER_HEADERS = frozenset({"server", "date"})


def app_headers(pairs) -> list[tuple[str, str]]:
    """The application's part of an answer's headers: ``pairs`` without those the server adds."""
    return [(str(k), str(v)) for k, v in pairs
            if not is_hop_by_hop(str(k)) and str(k).lower() not in SERVER_HEADERS]


def make_app(body: bytes, headers: list[tuple[str, str]] | None = None):
    if headers is None:
        headers = [("Content-Type", "application/ocsp-response"), ("Content-Length", str(len(body)))]
    lengths = [v for k, v in headers if k.lower() == "content-length"]
    if lengths != [str(len(body))]:
        raise ValueError(f"the ceiling's headers need one Content-Length equal to the body's {len(body)} octets, "
                         f"not {lengths}")
    chunks = [body]

    def app(environ, start_response):
        # Drain a POST body so keep-alive connections stay usable, as any real app must.
        length = environ.get("CONTENT_LENGTH")
        if length:
            environ["wsgi.input"].read(int(length))
        start_response("200 OK", headers)
        return chunks

    return app


def app_factory():
    """Entry point for granian workers (``--factory``)."""
    headers_file = os.environ.get(HEADERS_ENV)
    headers = app_headers(json.loads(Path(headers_file).read_text())) if headers_file else None
    return make_app(Path(os.environ[BODY_ENV]).read_bytes(), headers)
