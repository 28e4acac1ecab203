"""The combined server: admin API, CRLs and OCSP in one WSGI app under granian.

``create_app`` is the composition root for a worker process; ``serve`` is the launcher
(``jpki-mock serve`` / ``make run``): it starts background services (the CRL schedule) once,
in the launcher, then hands the socket to granian's worker processes.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from . import plugins
from .config import Config, load_config
from .runtime import Runtime

log = logging.getLogger("jpki_mock.server")

WSGIApp = Callable


class PrefixDispatcher:
    """Route by path prefix before any framework runs: the OCSP hot path never touches Flask."""

    def __init__(self, default: WSGIApp, mounts: list[tuple[str, WSGIApp]]):
        self.default = default
        self.mounts = sorted(mounts, key=lambda m: -len(m[0]))

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        for prefix, app in self.mounts:
            if path == prefix or path.startswith(prefix + "/"):
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                environ["PATH_INFO"] = path[len(prefix):]
                return app(environ, start_response)
        return self.default(environ, start_response)


def create_app(rt: Runtime | None = None) -> WSGIApp:
    from .api import create_admin_app

    rt = rt or Runtime.open()
    mounts = []
    for prefix, spec in plugins.MOUNTS:
        factory = plugins.load(spec)
        if factory is not None:
            mounts.append((prefix, factory(rt)))
    app = PrefixDispatcher(create_admin_app(rt), mounts)
    app.runtime = rt  # type: ignore[attr-defined]
    return app


def app_factory() -> WSGIApp:
    """Entry point for granian workers (``--factory``): configuration comes from the environment."""
    return create_app(Runtime.open(load_config()))


def print_urls(config: Config, rt: Runtime, out=sys.stdout) -> None:
    from .api import urls

    info = urls(rt)
    print(f"jpki-mock serving on http://{config.host}:{config.port} (data: {config.data_dir})", file=out)
    print(f"  admin API : {info['admin_api']}   (Authorization: Bearer <token from init>)", file=out)
    print(f"  OCSP      : {info['ocsp']}", file=out)
    for label, crls in info["crls"].items():
        print(f"  CRL {label:8s}: {crls['full']}", file=out)
    out.flush()


def serve(config: Config, target: str = "ca.server:app_factory", workers: int | None = None,
          background: bool = True) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    rt = Runtime.open(config)
    rt.store.require_initialised()
    stops = []
    if background:
        for start in plugins.available(plugins.BACKGROUND):
            stops.append(start(rt))
    print_urls(config, rt)
    # Workers rebuild the configuration from the environment: pass the resolved data dir on.
    os.environ["JPKI_MOCK_DATA"] = str(config.data_dir)
    os.environ["JPKI_MOCK_PORT"] = str(config.port)
    os.environ["JPKI_MOCK_HOST"] = config.host
    try:
        Granian(
            target, address=config.host, port=config.port, interface=Interfaces.WSGI,
            workers=workers or config.workers, factory=True, log_access=False, backlog=2048,
            # The combined server also streams CRLs and answers the admin API, requests that can
            # take a while: 8 threads unless ocsp.threads says otherwise, so one slow download does
            # not hold up OCSP (granian's default of hundreds of threads only adds GIL contention).
            blocking_threads=config.ocsp.threads or 8,
        ).serve()
    finally:
        for stop in stops:
            if callable(stop):
                stop()
        rt.close()
