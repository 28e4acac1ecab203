"""The access log (jpki_mock.accesslog): lines from real server processes — the combined server and
the standalone responder, granian's WSGI and RSGI interfaces, text and JSON — parsed back and
compared with the answers the client got, read with pyca/cryptography."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography.x509 import ocsp

from jpki_mock.accesslog import CHUNK, LABEL, REASON, AccessLog, Writer
from jpki_mock.clock import SystemClock
from tests.support import open_runtime
from tests.support.ocsp import issue, request_der, start_responder

TEXT = re.compile(r'(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<method>[A-Z]+) '
                  r'(?P<path>"(?:[^"\\]|\\.)*"|[^ "]+) (?P<status>\d{3}) (?P<bytes>\d+) (?P<duration_us>\d+)us'
                  r'(?: ocsp=(?P<ocsp>[A-Za-z,]+))?(?: reason=(?P<reason>"(?:[^"\\]|\\.)*"))?')


def parse(line: str, fmt: str) -> dict | None:
    """An access-log line as a dict (None for any other line of the server's output)."""
    if fmt == "json":
        if not line.startswith('{"time"'):
            return None
        return json.loads(line)
    m = TEXT.fullmatch(line)
    if m is None:
        return None
    out: dict = {k: v for k, v in m.groupdict().items() if v is not None}
    for key in ("status", "bytes", "duration_us"):
        out[key] = int(out[key])
    for key in ("path", "reason"):
        if out.get(key, "").startswith('"'):
            out[key] = json.loads(out[key])
    return out


def access_lines(srv, fmt: str, want: int, timeout: float = 10.0, key: str | None = None) -> list[dict]:
    """The server's access-log lines, once ``want`` of them (with ``key``, if given) are there."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [p for p in (parse(line, fmt) for line in srv.log.read_text(errors="replace").splitlines()) if p]
        if len([x for x in lines if key is None or key in x]) >= want or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


CASES = {
    # server, format (and how it is given), slow_client_guard: off = granian's WSGI, on = RSGI
    "combined-text-wsgi": ("serve", "text", [], {"JPKI_MOCK_SLOW_CLIENT_GUARD": "off"}),
    "combined-json-rsgi": ("serve", "json", ["--log-format", "json"], {"JPKI_MOCK_SLOW_CLIENT_GUARD": "on"}),
    "responder-text-rsgi": ("ocsp", "text", [], {"JPKI_MOCK_SLOW_CLIENT_GUARD": "on"}),
    "responder-json-wsgi": ("ocsp", "json", [], {"JPKI_MOCK_SLOW_CLIENT_GUARD": "off", "JPKI_MOCK_LOG_FORMAT": "json"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_good_revoked_and_malformed_requests_are_logged(tmp_path, case):
    kind, fmt, flags, env = CASES[case]
    args = ("serve", *flags) if kind == "serve" else ("ocsp", "serve", *flags)
    srv = start_responder(tmp_path / "data", env, workers=1, args=args)
    try:
        rt = open_runtime(srv.data_dir, SystemClock(), init=False)
        try:
            good, revoked = issue(rt, "auth", n=2)
            rt.authority.revoke("auth", revoked.serial, "keyCompromise")
        finally:
            rt.close()
        prefix = "/ocsp" if kind == "serve" else ""
        get_path = f"{prefix}/{base64.b64encode(request_der(good)).decode()}"
        post_path = prefix or "/"
        answers = [
            requests.get(srv.base + get_path, timeout=10),
            requests.post(srv.base + post_path, data=request_der(revoked), timeout=10,
                          headers={"Content-Type": "application/ocsp-request"}),
            requests.post(srv.base + post_path, data=b"\x30\x79 not DER", timeout=10,
                          headers={"Content-Type": "application/ocsp-request"}),
        ]
        # what the client got, read by pyca/cryptography
        assert ocsp.load_der_ocsp_response(answers[0].content).certificate_status == ocsp.OCSPCertStatus.GOOD
        assert ocsp.load_der_ocsp_response(answers[1].content).certificate_status == ocsp.OCSPCertStatus.REVOKED
        bad = ocsp.load_der_ocsp_response(answers[2].content)
        assert bad.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST and answers[2].status_code == 400
        lines = access_lines(srv, fmt, 3, key="ocsp")
    finally:
        srv.stop()
    ocsp_lines = [line for line in lines if line.get("ocsp")]
    assert [(x["method"], x["path"], x["status"], x["bytes"], x["ocsp"]) for x in ocsp_lines] == [
        ("GET", get_path, 200, len(answers[0].content), "good"),
        ("POST", post_path, 200, len(answers[1].content), "revoked"),
        ("POST", post_path, 400, len(answers[2].content), "malformedRequest"),
    ]
    assert "reason" not in ocsp_lines[0] and "reason" not in ocsp_lines[1]
    # why the 5-octet answer: the field and what was wrong with it
    assert len(answers[2].content) == 5
    assert ocsp_lines[2]["reason"].startswith("request: not a DER OCSPRequest: ")
    for line in ocsp_lines:
        assert 0 <= line["duration_us"] < 10_000_000
        assert abs(datetime.fromisoformat(line["time"]) - datetime.now(UTC)) < timedelta(minutes=5)


def test_the_access_log_can_be_turned_off(tmp_path):
    srv = start_responder(tmp_path / "data", {"JPKI_MOCK_LOG_FORMAT": "json"}, workers=1,
                          args=("serve", "--no-access-log"))
    try:
        assert requests.post(srv.base + "/ocsp", data=b"junk", timeout=10,
                             headers={"Content-Type": "application/ocsp-request"}).status_code == 400
        assert requests.get(srv.base + "/healthz", timeout=10).status_code == 200
        time.sleep(0.5)  # more than the writer's interval
        assert access_lines(srv, "json", 1, timeout=0) == []
        assert access_lines(srv, "text", 1, timeout=0) == []
    finally:
        srv.stop()


def test_admin_errors_carry_their_reason(tmp_path):
    srv = start_responder(tmp_path / "data", {}, workers=1, args=("serve",))
    try:
        r = requests.post(srv.base + "/admin/api/certificates/auth/1/revoke", json={"reason": "bogus"},
                          headers={"Authorization": f"Bearer {srv.token}"}, timeout=10)
        assert r.status_code == 400
        r2 = requests.get(srv.base + "/crl/nowhere", timeout=10)
        lines = access_lines(srv, "text", 3)
    finally:
        srv.stop()
    revoke = next(x for x in lines if x["method"] == "POST")
    assert revoke["status"] == 400 and revoke["bytes"] == len(r.content) and "ocsp" not in revoke
    assert revoke["reason"] == "reason: 'bogus' is not a JPKI revocation reason"
    crl = next(x for x in lines if x["path"] == "/crl/nowhere")
    assert crl["status"] == r2.status_code == 404 and crl["reason"].startswith("path: no CRL at /crl/nowhere")


# ------------------------------------------------------------------ the formatter and the writer, alone
def fixed_app(label=None, reason=None, status="200 OK", body=(b"abc",)):
    def app(environ, start_response):
        if label is not None:
            environ[LABEL] = label
        if reason is not None:
            environ[REASON] = reason
        start_response(status, [("Content-Type", "application/octet-stream")])
        return list(body)
    return app


class Collect(Writer):
    def __init__(self):
        super().__init__(-1)
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_paths_and_reasons_cannot_forge_or_split_a_line(fmt):
    log = AccessLog(fmt, Collect())
    app = log.wrap(fixed_app("malformedRequest", 'a "quoted"\nreason\u2028', "400 Bad Request", (b"12", b"345")))
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": '/a b"c\n2026-01-01T00:00:00.000Z GET / 200 1 1us\x85',
               "QUERY_STRING": "x=1"}
    list(app(environ, lambda *a: None))
    (line,) = log.writer.lines
    assert line.endswith("\n") and line.count("\n") == 1 and line.isascii()
    parsed = parse(line.rstrip("\n"), fmt)
    assert parsed is not None
    assert parsed["path"] == environ["PATH_INFO"] + "?x=1"
    assert parsed["reason"] == 'a "quoted"\nreason\u2028'
    assert (parsed["status"], parsed["bytes"], parsed["ocsp"]) == (400, 5, "malformedRequest")


def test_lazy_bodies_are_logged_once_closed_with_what_was_sent():
    log = AccessLog("text", Collect())

    class Body:
        closed = False

        def __iter__(self):
            yield b"x" * 10
            yield b"y" * 5

        def close(self):
            Body.closed = True

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    result = log.wrap(app)({"REQUEST_METHOD": "GET", "PATH_INFO": "/crl/x.crl"}, lambda *a: None)
    assert log.writer.lines == []
    assert b"".join(result) == b"x" * 10 + b"y" * 5
    result.close()
    assert Body.closed
    (line,) = log.writer.lines
    assert parse(line.rstrip("\n"), "text")["bytes"] == 15


def test_the_writer_writes_whole_lines_of_at_most_pipe_buf_to_a_pipe(monkeypatch):
    sizes = []
    real = os.write

    def recording(fd, data):
        sizes.append(len(data))
        assert data.endswith(b"\n")
        return real(fd, data)

    monkeypatch.setattr(os, "write", recording)
    read, write = os.pipe()
    received = []
    reader = threading.Thread(target=lambda: received.extend(iter(lambda: os.read(read, 65536), b"")))
    reader.start()
    try:
        writer = Writer(write)
        lines = [f"line {i} " + "x" * (i % 300) + "\n" for i in range(2000)]
        for line in lines:
            writer.write(line)
        writer.flush()
    finally:
        os.close(write)
        reader.join(10)
        os.close(read)
    assert b"".join(received).decode() == "".join(lines)
    assert max(sizes) <= CHUNK and len(sizes) > 1


def test_the_writer_writes_a_batch_at_once_to_a_file(tmp_path):
    with open(tmp_path / "log", "wb") as fh:
        writer = Writer(fh.fileno())
        for i in range(Writer.BATCH - 1):
            writer.write(f"{i}\n")
        assert (tmp_path / "log").read_bytes() == b""  # queued, not one write per line
        writer.write("last\n")  # the batch is full: written by the request that filled it
        assert (tmp_path / "log").read_text().splitlines()[-1] == "last"
        writer.write("alone\n")
        time.sleep(Writer.INTERVAL * 4)  # a quiet server's last line: the background thread writes it
        assert (tmp_path / "log").read_text().splitlines()[-1] == "alone"
