"""loadtest/bench/wrk.py with ``start``: one wrk thread walks its file from the first line, so the
first ``requests`` lines are the ones asked (the scale benchmark's RSS run counts distinct serials
by it).  Checked against what a real HTTP server on loopback received."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from jpki_mock.loadtest import ocsp_requests as oreq
from jpki_mock.loadtest.bench.ocsp import write_lines
from jpki_mock.loadtest.bench.wrk import run_wrk, wrk_binary


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        body = b"not an OCSP response"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(ConnectionResetError):  # wrk closes its connections when the run ends
            super().handle()


@pytest.fixture
def recorder():
    _Recorder.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.paths
    finally:
        server.shutdown()
        server.server_close()


def test_start_walks_the_file_from_its_first_line(recorder, tmp_path: Path) -> None:
    base, seen = recorder
    name_hash, key_hash = bytes(20), bytes(range(20))
    paths = [oreq.get_path("", oreq.request_der(name_hash, key_hash, serial)) for serial in range(1, 200_001)]
    data = write_lines(tmp_path / "lines.txt",
                       [oreq.get_line(p, key_hash, oreq.Target(s, "good")) for s, p in enumerate(paths, 1)])
    result, _ = run_wrk(base + "/", data, threads=1, connections=2, duration=1, wrk=wrk_binary(), start=0)
    assert 0 < result.requests < len(paths)  # the run ended before the file did: no line asked twice
    # What the server received is the file's first lines, each once (the two connections' order
    # among themselves is the server's); at most a request a connection more than wrk counted
    # (sent, not answered when the run ended).
    assert len(set(seen)) == len(seen)
    assert set(seen) == set(paths[:len(seen)])
    assert result.requests <= len(seen) <= result.requests + 2


def test_start_needs_one_thread(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only one wrk thread"):
        run_wrk("http://127.0.0.1:9/", tmp_path / "none.txt", threads=2, connections=2, duration=1, start=0)
