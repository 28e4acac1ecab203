"""The launcher: ``jpki-mock serve`` (the combined server, ``make run``) and ``jpki-mock ocsp
serve`` (the responder on its own, the part that scales out), both under granian.

Background services (the CRL schedule) start once, in the launcher; then the socket goes to
granian's worker processes, each of which builds its app through a factory below from the
configuration the launcher passes on in the environment.

With ``slow_client_guard`` on (the default for a ``shared`` server) both serve through granian's
RSGI interface with :class:`jpki_mock.rsgi.RsgiBridge` in front of the WSGI apps: granian's WSGI
interface reads a request body on the app's thread with no time limit, so slow clients could
hold every thread (docs/ocsp.md, "Slow clients"); the bridge reads each body on the event loop,
capped and with a deadline, before the app runs.  That costs about half again the server CPU
per cached answer, so a private server keeps granian's WSGI interface.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from typing import IO, Any

from jpki_mock import datadir
from jpki_mock.app import PrefixDispatcher, create_app
from jpki_mock.config import Config, load_config
from jpki_mock.crl import schedule
from jpki_mock.crl.publisher import CrlDeps
from jpki_mock.ocsp import http as ocsp_http
from jpki_mock.public.pages import service_urls
from jpki_mock.rsgi import BodyLimits, RsgiBridge
from jpki_mock.runtime import Runtime

#: where the combined server mounts the responder (jpki_mock.app.create_app)
OCSP_PREFIX = "/ocsp"
#: the environment variable passing ``jpki-mock ocsp serve --threads`` on to the workers
THREADS_ENV = "JPKI_MOCK_SERVE_THREADS"


def combined_threads(config: Config) -> int:
    # The combined server also streams CRLs and answers the admin API, requests that can take a
    # while: 8 threads unless ocsp.threads says otherwise, so one slow download does not hold
    # up OCSP (more threads only add GIL contention).
    return config.ocsp.threads or 8


def combined_inline(config: Config) -> Callable[[str], bool] | None:
    """The combined server's paths that run on the event loop, not on its pool: /ocsp, when the
    responder would run one thread (``ocsp.serve_threads``: every answer is CPU work in the
    process, so a thread hand-off only adds cost); with the database check, nothing (the
    threads overlap the database waits)."""
    if config.ocsp.serve_threads != 1:
        return None
    return _under_ocsp


def _under_ocsp(path: str) -> bool:
    return path == OCSP_PREFIX or path.startswith(OCSP_PREFIX + "/")


def _responder_limits(config: Config) -> BodyLimits:
    """The responder's body limits, the same in the combined server and standalone."""
    return BodyLimits(config.ocsp.max_request_bytes, config.ocsp.body_timeout_ms / 1000)


def combined_limits(config: Config) -> Callable[[str], BodyLimits]:
    """Body limits by path: the responder's for /ocsp, the admin API's for everything else."""
    ocsp = _responder_limits(config)
    admin = BodyLimits(config.max_body_bytes, config.body_timeout_ms / 1000)

    def limits(path: str) -> BodyLimits:
        return ocsp if _under_ocsp(path) else admin

    return limits


def ocsp_limits(config: Config) -> Callable[[str], BodyLimits]:
    """Body limits of the standalone responder: every path is the responder's."""
    ocsp = _responder_limits(config)
    return lambda _path: ocsp


def app_factory() -> RsgiBridge | PrefixDispatcher:
    """Entry point for the combined server's granian workers (``--factory``)."""
    config = load_config()
    app: PrefixDispatcher = create_app(Runtime.open(config))
    if not config.guards_slow_clients:
        return app
    return RsgiBridge(app, combined_limits(config), combined_threads(config), combined_inline(config))


def ocsp_app_factory() -> Any:
    """Entry point for granian workers of ``jpki-mock ocsp serve`` (configuration from the environment)."""
    rt = Runtime.open(load_config())
    app = ocsp_http.make_app(rt.config, rt.clock, rt.store, rt.status, rt.keyring, rt.epoch)
    threads = int(os.environ.get(THREADS_ENV) or rt.config.ocsp.serve_threads)
    served = RsgiBridge(app, ocsp_limits(rt.config), threads) if rt.config.guards_slow_clients else app
    # Everything loaded so far (SQLAlchemy, cryptography, the issuers) lives as long as the
    # worker: move it out of the collector's generations so that the garbage collections the
    # per-request allocations trigger do not walk it again and again.
    gc.collect()
    gc.freeze()
    return served


def _granian_options(config: Config, threads: int) -> dict[str, Any]:
    """Granian options of both launchers.  Guarded: the RSGI interface (jpki_mock.rsgi) with
    asyncio's tasks (granian's Rust task implementation is experimental there, and measured no
    cheaper here: docs/ocsp.md, "Slow clients"); its threads are the bridge's own.  Unguarded:
    the WSGI interface with ``threads`` blocking threads (granian's default of hundreds only
    adds GIL contention)."""
    from granian.constants import Interfaces

    common: dict[str, Any] = {"factory": True, "log_access": False, "backlog": 2048}
    if config.guards_slow_clients:
        return {"interface": Interfaces.RSGI, **common}
    return {"interface": Interfaces.WSGI, "blocking_threads": threads, **common}


def print_urls(config: Config, rt: Runtime, out: IO[str] = sys.stdout) -> None:
    info = service_urls(config, rt.status)
    print(f"jpki-mock serving on http://{config.host}:{config.port} (data: {config.data_dir})", file=out)
    print(f"  admin API : {info['admin_api']}   (Authorization: Bearer <token from init>)", file=out)
    print(f"  OCSP      : {info['ocsp']}", file=out)
    for label, crls in info["crls"].items():
        print(f"  CRL {label:8s}: {crls['full']}", file=out)
    out.flush()


def _pass_on(config: Config) -> None:
    # Workers rebuild the configuration from the environment: pass the resolved values on.
    os.environ["JPKI_MOCK_DATA"] = str(config.data_dir)
    os.environ["JPKI_MOCK_PORT"] = str(config.port)
    os.environ["JPKI_MOCK_HOST"] = config.host


def serve(config: Config, workers: int | None = None, background: bool = True) -> None:
    """Run the combined server (admin API, CRLs, OCSP) on ``config.host:config.port``."""
    from granian import Granian

    rt = Runtime.open(config)
    rt.store.require_initialised()
    # Held until this process ends: `jpki-mock reset` refuses while it is held.
    datadir.hold_server_lock(config.data_dir)
    stop = schedule.start(CrlDeps.of(rt)) if background else None
    print_urls(config, rt)
    _pass_on(config)
    try:
        Granian(
            "jpki_mock.server:app_factory", address=config.host, port=config.port,
            workers=workers or config.workers, **_granian_options(config, combined_threads(config)),
        ).serve()
    finally:
        if stop is not None:
            stop()
        rt.close()


def serve_ocsp(config: Config, port: int, workers: int | None = None, threads: int | None = None) -> None:
    """Run the OCSP responder alone on ``config.host:port``; its root path answers."""
    from granian import Granian

    rt = Runtime.open(config)
    rt.store.require_initialised()
    rt.close()
    datadir.hold_server_lock(config.data_dir)  # as serve() does
    _pass_on(config)
    if threads:
        os.environ[THREADS_ENV] = str(threads)
    print(f"jpki-mock OCSP responder on http://{config.host}:{port}/ (data: {config.data_dir})", flush=True)
    Granian(
        "jpki_mock.server:ocsp_app_factory", address=config.host, port=port,
        workers=workers or config.ocsp.workers,
        **_granian_options(config, threads or config.ocsp.serve_threads),
    ).serve()
