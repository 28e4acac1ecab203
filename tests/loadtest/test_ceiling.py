"""The benchmark's ceiling sends what the responder sent: same status, headers and body, so the
server and wrk do the same work per answer for both and only the application's differs."""

from __future__ import annotations

import io
import json

import pytest
from asn1crypto import ocsp as a_ocsp

from jpki_mock.loadtest import ocsp_requests as oreq
from jpki_mock.loadtest.bench.ceiling import app_factory, app_headers, make_app
from tests.support.ocsp import call, ocsp_app


@pytest.fixture(scope="module")
def responder_answer(seeded):
    """The responder's real answer to a GET for a good certificate: (path, response)."""
    issuer = seeded.authority.issuer("auth")
    serial = seeded.authority.list_certificates(kind="auth", status="good", limit=1)[0].serial
    path = oreq.get_path("", oreq.request_der(issuer.name_hash["sha1"], issuer.key_hash["sha1"], serial))
    return path, call(ocsp_app(seeded), "GET", path)


def test_the_ceiling_sends_the_responders_answer(responder_answer):
    path, resp = responder_answer
    assert resp.status == 200
    assert a_ocsp.OCSPResponse.load(resp.body)["response_status"].native == "successful"
    # the RFC 5019 caching headers are part of what the ceiling must send too
    assert {k.lower() for k in resp.headers} >= {"cache-control", "etag", "expires", "last-modified", "content-length"}
    # as captured over HTTP: the server's own and the hop-by-hop headers come along and are dropped
    captured = [*resp.headers.items(), ("Server", "granian"), ("date", "Thu, 26 Nov 2026 12:00:00 GMT"),
                ("Connection", "keep-alive")]
    ceiling = call(make_app(resp.body, app_headers(captured)), "GET", path)
    assert (ceiling.status_line, ceiling.headers, ceiling.body) == (resp.status_line, resp.headers, resp.body)


def test_the_ceiling_drains_a_post_body(responder_answer):
    _, resp = responder_answer
    stream = io.BytesIO(b"\x30\x03\x02\x01\x00")
    seen = []
    app = make_app(resp.body, list(resp.headers.items()))
    out = app({"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "5", "wsgi.input": stream},
              lambda status, headers, exc_info=None: seen.append(status))
    assert (seen, b"".join(out)) == (["200 OK"], resp.body)
    assert stream.read() == b""  # everything read, so the keep-alive connection stays usable


def test_the_ceiling_refuses_headers_that_do_not_fit_the_body(responder_answer):
    _, resp = responder_answer
    headers = list(resp.headers.items())
    with pytest.raises(ValueError, match="Content-Length equal to the body's"):
        make_app(resp.body + b"x", headers)
    with pytest.raises(ValueError, match="one Content-Length"):
        make_app(resp.body, [(k, v) for k, v in headers if k.lower() != "content-length"])


def test_app_factory_reads_body_and_headers_files(responder_answer, tmp_path, monkeypatch):
    path, resp = responder_answer
    (tmp_path / "body.der").write_bytes(resp.body)
    headers = [[k, v] for k, v in resp.headers.items()]
    (tmp_path / "headers.json").write_text(json.dumps([*headers, ["Server", "granian"]]))
    monkeypatch.setenv("JPKI_BENCH_CEILING_BODY", str(tmp_path / "body.der"))
    monkeypatch.setenv("JPKI_BENCH_CEILING_HEADERS", str(tmp_path / "headers.json"))
    assert call(app_factory(), "GET", path).headers == resp.headers
    monkeypatch.delenv("JPKI_BENCH_CEILING_HEADERS")
    assert call(app_factory(), "GET", path).headers == {"Content-Type": "application/ocsp-response",
                                                       "Content-Length": str(len(resp.body))}
