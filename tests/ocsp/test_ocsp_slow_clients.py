"""Slow clients cannot starve the responder (issue 16, point 8).

A real server process on 127.0.0.1 (``jpki-mock ocsp serve --workers 2`` with its default of one
thread per worker, and the combined ``jpki-mock serve --workers 2`` with eight): twice as many
connections as the server has app threads send their headers and then dribble a POST body one
octet a second, while a normal client makes lookups.  Every normal lookup is answered (parsed
back with pyca/cryptography: successful, ``good``, the serial asked), with a p99 under 50 ms,
before any slow body's deadline; afterwards every slow connection has its malformedRequest
answer with HTTP 408 (RFC 9110 section 15.5.9) and ``Connection: close``, and the server still
answers.  Under granian's WSGI interface the same run timed every lookup out (docs/ocsp.md,
"Slow clients").
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import ocsp as a_ocsp
from cryptography.x509 import ocsp

from jpki_mock.config import load_config
from jpki_mock.runtime import Runtime
from tests.support.ocsp import PASSPHRASE, get_path, issue, request_der, start_responder

#: the deadline the servers here give a body: longer than the normal client needs, so that the
#: slow connections are all held while it asks
BODY_TIMEOUT_MS = 8000
#: how long a slow client dribbles at most (it would need a minute for a whole request)
DRIBBLE_SECONDS = 20
LOOKUPS = 200

#: the guard is on by default only for a shared server; these tests switch it on explicitly
GUARDED = {"JPKI_MOCK_SLOW_CLIENT_GUARD": "on"}


@pytest.mark.parametrize(("guard", "shared", "guarded"), [
    ("auto", False, False), ("auto", True, True), ("on", False, True), ("off", True, False),
])
def test_the_guard_is_on_for_a_shared_server_unless_set(tmp_path, guard, shared, guarded):
    config = load_config({"JPKI_MOCK_SLOW_CLIENT_GUARD": guard}, data_dir=tmp_path, shared=shared)
    assert config.guards_slow_clients is guarded


class Slow(threading.Thread):
    """A client that sends a POST's headers with Content-Length, then one body octet a second."""

    def __init__(self, port: int, path: str, body: bytes, content_type: str, token: str | None = None):
        super().__init__(daemon=True)
        self.port, self.path, self.body, self.content_type, self.token = port, path, body, content_type, token
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sent = 0
        self.reply = b""
        self.answered_at: float | None = None
        self.closed_by_server = False

    def run(self) -> None:
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        head = (f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {self.content_type}\r\n{auth}"
                f"Content-Length: {len(self.body)}\r\n\r\n").encode()
        sock = self.sock
        try:
            sock.sendall(head)
            sock.settimeout(1.0)
            start = time.monotonic()
            while time.monotonic() - start < DRIBBLE_SECONDS and self.sent < len(self.body) and not self.reply:
                try:
                    sock.sendall(self.body[self.sent:self.sent + 1])
                    self.sent += 1
                except OSError:
                    break
                try:
                    self.reply = sock.recv(65536)
                except TimeoutError:
                    continue
            self.answered_at = time.monotonic() if self.reply else None
            sock.settimeout(5)
            while self.reply and not self._complete():
                more = sock.recv(65536)
                if not more:
                    break
                self.reply += more
            self.closed_by_server = _closed(sock)
        except OSError:
            pass  # closed under it: the test has failed already and is cleaning up
        finally:
            sock.close()

    def _complete(self) -> bool:
        head, sep, body = self.reply.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        return len(body) >= length

    def response(self) -> tuple[int, dict[str, str], bytes]:
        head, _, body = self.reply.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, body


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (within 3 s of its answer)."""
    sock.settimeout(3)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False  # still open
    except OSError:
        return True  # reset


def _lookups(port: int, prefix: str, item, n: int) -> list[float]:
    """``n`` lookups (GET and POST in turn) on one keep-alive connection; their latencies in ms."""
    der = request_der(item)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    latencies = []
    try:
        for i in range(n):
            t = time.perf_counter()
            if i % 2:
                conn.request("GET", prefix + get_path(der))
            else:
                conn.request("POST", prefix + "/", body=der, headers={"Content-Type": "application/ocsp-request"})
            resp = conn.getresponse()
            body = resp.read()
            latencies.append((time.perf_counter() - t) * 1000)
            assert resp.status == 200, (i, resp.status)
            answer = ocsp.load_der_ocsp_response(body)
            assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
            assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
            assert answer.serial_number == item.serial
            time.sleep(0.01)
    finally:
        conn.close()
    return latencies


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, round(len(ordered) * 0.99) - 1)]


def _issued(data_dir: Path) -> tuple[Any, bytes]:
    """A user-authentication certificate issued on the running server's data directory, and an
    OCSP request about it."""
    rt = Runtime.open(load_config({}, data_dir=data_dir, key_passphrase=PASSPHRASE))
    try:
        item = issue(rt, "auth")[0]
    finally:
        rt.close()
    return item, request_der(item)


@pytest.mark.parametrize("server, threads, prefix", [
    (("ocsp", "serve"), 1, ""),
    (("serve",), 8, "/ocsp"),
], ids=["ocsp-serve", "serve"])
def test_slow_bodies_do_not_starve_lookups(tmp_path, server, threads, prefix):
    env = {"JPKI_MOCK_OCSP_BODY_TIMEOUT_MS": str(BODY_TIMEOUT_MS), "JPKI_MOCK_BODY_TIMEOUT_MS": str(BODY_TIMEOUT_MS),
           "JPKI_MOCK_CRL_SCHEDULE": "false", **GUARDED}
    srv = start_responder(tmp_path, env, workers=2, args=server)
    slow: list[Slow] = []
    try:
        item, der = _issued(tmp_path)
        # Warm up: a worker's first answer is slow (it signs, loading its signing key first: up to
        # hundreds of ms), not what this test measures. Connections go to either worker, so ten new ones reach
        # both but for a chance of 1 in 512.
        for _ in range(10):
            _lookups(srv.port, prefix, item, 2)

        # twice as many slow bodies as the server has app threads (2 workers x threads)
        slow = [Slow(srv.port, prefix + "/", der, "application/ocsp-request") for _ in range(2 * 2 * threads)]
        if prefix:  # the combined server's admin API reads its bodies the same way
            slow.append(Slow(srv.port, "/admin/api/tokens", b'{"name": "slow"}', "application/json", srv.token))
        started = time.monotonic()
        for client in slow:
            client.start()
        time.sleep(1.0)  # every slow request is in, its body trickling
        latencies = _lookups(srv.port, prefix, item, LOOKUPS)
        finished = time.monotonic()
        for client in slow:
            client.join(DRIBBLE_SECONDS + 15)

        # the lookups all ran while every slow connection was still held
        assert finished - started < BODY_TIMEOUT_MS / 1000 - 1
        assert all(client.answered_at is not None and client.answered_at >= finished for client in slow)
        p99 = _p99(latencies)
        print(f"\n{server}: {len(slow)} slow bodies, {LOOKUPS} lookups, p50 {sorted(latencies)[LOOKUPS // 2]:.2f} ms, "
              f"p99 {p99:.2f} ms, max {max(latencies):.2f} ms")
        assert len(latencies) == LOOKUPS and p99 < 50

        for client in slow:
            status, headers, body = client.response()
            assert status == 408, client.reply[:200]
            assert headers.get("connection", "").lower() == "close"
            assert client.closed_by_server
            assert 0 < client.sent < len(client.body)
            assert client.answered_at - started < BODY_TIMEOUT_MS / 1000 + 3
            if client.path.startswith("/admin"):
                assert json.loads(body)["error"] == "request_timeout"
            else:
                assert headers["content-type"] == "application/ocsp-response"
                assert a_ocsp.OCSPResponse.load(body)["response_status"].native == "malformed_request"

        assert _lookups(srv.port, prefix, item, 4)  # still healthy
    finally:
        for client in slow:
            client.sock.close()
        srv.stop()


def _exchange(port: int, raw: bytes, wait: float = 10.0) -> tuple[int, dict[str, str], bytes, bool]:
    """Send ``raw`` on a new connection; the answer (status, headers, body) and whether the
    server then closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(raw)
        reader = Slow.__new__(Slow)
        reader.reply = b""
        while not reader._complete():
            more = sock.recv(65536)
            if not more:
                break
            reader.reply += more
        return (*reader.response(), _closed(sock))


def test_stalled_oversized_and_chunked_bodies(tmp_path):
    """A body that never comes is a 408 after the deadline; one announced over the cap a 413
    without waiting for it; a chunked body (no Content-Length) under the cap is answered."""
    srv = start_responder(tmp_path, {"JPKI_MOCK_OCSP_BODY_TIMEOUT_MS": "1000", **GUARDED}, workers=1)
    try:
        item, der = _issued(tmp_path)
        head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocsp-request\r\n"

        started = time.monotonic()
        status, headers, body, closed = _exchange(srv.port, f"{head}Content-Length: {len(der)}\r\n\r\n".encode())
        assert status == 408 and closed and headers["connection"].lower() == "close"
        assert 0.9 < time.monotonic() - started < 5
        assert a_ocsp.OCSPResponse.load(body)["response_status"].native == "malformed_request"

        started = time.monotonic()
        status, headers, body, closed = _exchange(srv.port, f"{head}Content-Length: 70000\r\n\r\n".encode())
        assert status == 413 and closed and time.monotonic() - started < 0.9
        assert a_ocsp.OCSPResponse.load(body)["response_status"].native == "malformed_request"

        chunked = f"{head}Transfer-Encoding: chunked\r\n\r\n{len(der):x}\r\n".encode() + der + b"\r\n0\r\n\r\n"
        status, headers, body, closed = _exchange(srv.port, chunked)
        assert status == 200 and not closed
        answer = ocsp.load_der_ocsp_response(body)
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD and answer.serial_number == item.serial

        over = f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + b"".join(
            b"8000\r\n" + b"\x00" * 0x8000 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
        status, headers, body, closed = _exchange(srv.port, over)
        assert status == 413 and closed
    finally:
        srv.stop()
