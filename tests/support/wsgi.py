"""A quiet, threaded WSGI server on 127.0.0.1 for the fakes the tests run in-process (an OCSP
target, a time-stamping authority, a recording proxy)."""

from __future__ import annotations

import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class LocalServer:
    """``app`` served on a free port of 127.0.0.1 (``base``); :meth:`start` runs it in a daemon
    thread, :meth:`stop` shuts it down and closes the socket."""

    def __init__(self, app: Any):
        self.server = make_server("127.0.0.1", 0, app, server_class=_Threading, handler_class=_Quiet)
        self.port = self.server.server_port
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
