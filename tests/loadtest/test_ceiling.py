"""The benchmark's ceiling sends what the responder sent: same status, headers and body, so the
server and wrk do the same work per answer for both and only the application's differs."""

from __future__ import annotations

import io
import json

import pytest
from asn1crypto import ocsp as a_ocsp

from loadtest import ocsp_requests as oreq
from loadtest.ceiling import app_factory, app_headers, make_app
from ocsp.http import OcspApp


def call(app, path: str, method: str = "GET", body: bytes = b""):
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, list(headers)

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)) if body else "",
               "CONTENT_TYPE": "application/ocsp-request", "wsgi.input": io.BytesIO(body)}
    out = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], out, environ["wsgi.input"]


@pytest.fixture(scope="module")
def responder_answer(seeded):
    """The responder's real answer to a GET for a good certificate: (status, headers, body)."""
    issuer = seeded.authority.issuer("auth")
    serial = seeded.authority.list_certificates(kind="auth", status="good", limit=1)[0].serial
    path = oreq.get_path("", oreq.request_der(issuer.name_hash["sha1"], issuer.key_hash["sha1"], serial))
    status, headers, body, _ = call(OcspApp(seeded), path)
    return path, status, headers, body


def test_the_ceiling_sends_the_responders_answer(responder_answer):
    path, status, headers, body = responder_answer
    assert status == "200 OK"
    assert a_ocsp.OCSPResponse.load(body)["response_status"].native == "successful"
    # the RFC 5019 caching headers are part of what the ceiling must send too
    assert {k.lower() for k, _ in headers} >= {"cache-control", "etag", "expires", "last-modified", "content-length"}
    # as captured over HTTP: the server's own headers come along and are dropped
    ceiling = make_app(body, app_headers(headers + [("Server", "granian"), ("date", "Thu, 26 Nov 2026 12:00:00 GMT")]))
    c_status, c_headers, c_body, _ = call(ceiling, path)
    assert (c_status, c_headers, c_body) == (status, headers, body)


def test_the_ceiling_drains_a_post_body(responder_answer):
    _, _, headers, body = responder_answer
    status, _, out, stream = call(make_app(body, headers), "/", "POST", b"\x30\x03\x02\x01\x00")
    assert (status, out) == ("200 OK", body)
    assert stream.read() == b""  # everything read, so the keep-alive connection stays usable


def test_the_ceiling_refuses_headers_that_do_not_fit_the_body(responder_answer):
    _, _, headers, body = responder_answer
    with pytest.raises(ValueError, match="Content-Length equal to the body's"):
        make_app(body + b"x", headers)
    with pytest.raises(ValueError, match="one Content-Length"):
        make_app(body, [(k, v) for k, v in headers if k.lower() != "content-length"])


def test_app_factory_reads_body_and_headers_files(responder_answer, tmp_path, monkeypatch):
    path, _, headers, body = responder_answer
    (tmp_path / "body.der").write_bytes(body)
    (tmp_path / "headers.json").write_text(json.dumps([[k, v] for k, v in headers] + [["Server", "granian"]]))
    monkeypatch.setenv("JPKI_BENCH_CEILING_BODY", str(tmp_path / "body.der"))
    monkeypatch.setenv("JPKI_BENCH_CEILING_HEADERS", str(tmp_path / "headers.json"))
    assert call(app_factory(), path)[1] == headers
    monkeypatch.delenv("JPKI_BENCH_CEILING_HEADERS")
    assert call(app_factory(), path)[1] == [("Content-Type", "application/ocsp-response"),
                                            ("Content-Length", str(len(body)))]
