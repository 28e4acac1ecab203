"""The benchmark's ceiling: a bare WSGI app that answers every request with fixed bytes.

Run under the same server (granian WSGI) with the same worker count as the OCSP responder,
it measures what the server, the kernel's loopback and the load generator allow on this
machine when the application does nothing.  The bytes are a real OCSP response (the file
named by ``JPKI_BENCH_CEILING_BODY``), so the load generator reads and checks exactly as
much as it does against the responder.
"""

from __future__ import annotations

import os
from pathlib import Path

BODY_ENV = "JPKI_BENCH_CEILING_BODY"


def make_app(body: bytes):
    headers = [("Content-Type", "application/ocsp-response"), ("Content-Length", str(len(body)))]
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
    return make_app(Path(os.environ[BODY_ENV]).read_bytes())
