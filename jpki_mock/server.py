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

Both launchers behave as a service: the port is bound first without ``SO_REUSEPORT`` (granian
binds each worker's socket with it, so a second server on a taken port would otherwise start
and share its connections), a taken port is one line on stderr and a non-zero exit, and
SIGINT (Ctrl-C, sent to the whole process group) or SIGTERM stops every process within a
second or two, after each worker has added its OCSP lookup counts to the shared table.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from jpki_mock import accesslog, datadir, errors
from jpki_mock.app import create_app
from jpki_mock.config import SECRETS, Config, env_variable, load_config, settings
from jpki_mock.crl import schedule
from jpki_mock.crl.publisher import CrlDeps
from jpki_mock.ocsp import http as ocsp_http
from jpki_mock.ocsp import stats as ocsp_stats
from jpki_mock.public.pages import service_urls
from jpki_mock.rsgi import BodyLimits, RsgiBridge
from jpki_mock.runtime import Runtime

#: where the combined server mounts the responder (jpki_mock.app.create_app)
OCSP_PREFIX = "/ocsp"
#: the environment variable passing ``jpki-mock ocsp serve --threads`` on to the workers
THREADS_ENV = "JPKI_MOCK_SERVE_THREADS"
#: how long the launcher waits for a worker to stop after SIGTERM before it kills it (seconds;
#: granian waits forever by default).  A worker stops in milliseconds, flushing its lookup
#: counts as it goes (:func:`_stop_on_signal`); this bounds the stop if it ever does not.
STOP_GRACE_SECONDS = 1
#: how long a worker told to stop may take to leave by itself (granian's shutdown) before
#: :func:`_stop_on_signal` flushes its counters once more and ends it
WORKER_EXIT_SECONDS = 0.5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ensure_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` once without ``SO_REUSEPORT``: if anything listens there (another
    jpki-mock, whose granian workers bind with ``SO_REUSEPORT``, or any other program) the bind
    fails, and the answer is one line instead of a shared port or a traceback.
    ``SO_REUSEADDR`` only lets the bind through connections left in TIME_WAIT by a server
    that has just stopped (Linux refuses it while a socket listens on the port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise port_error(host, port, exc) from None


def port_error(host: str, port: int, exc: OSError) -> errors.JpkiError:
    if exc.errno == errno.EADDRINUSE:
        return errors.Conflict(f"{host}:{port} is already in use (another jpki-mock server or another program); "
                               "stop it or choose another port (PORT=... make run, or --port)", field="port")
    return errors.ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="host/port")


def _stop_on_signal(worker: str | None) -> None:
    """Make SIGINT/SIGTERM stop this process at once, its lookup counts flushed first.

    CPython runs signal handlers on the main thread only, when that thread wakes up.  When
    the kernel delivers the signal to another thread (granian's Rust threads, our own), a main
    thread blocked on a lock (the launcher joins its workers) does not wake.  The C handler
    still writes the signal number to the wakeup fd, from whichever thread it ran on; a relay
    thread reads it, flushes the counters, and sends the signal to the main thread itself
    (once per signal: that second delivery writes to the fd again).

    A ``worker`` (granian's interface, ``"wsgi"`` or ``"rsgi"``) goes further.  granian's WSGI
    worker was seen to deadlock in its shutdown (every thread waiting for the GIL) when its
    signal handler ran twice, as Ctrl-C makes it (SIGINT to the whole process group, then the
    launcher's SIGTERM), and not to wake at all when the signal landed on another thread.  So
    a WSGI worker's threads block both signals (the mask is set first, before the app and
    granian start their threads, which inherit it), and a thread takes them with ``sigwait``,
    flushes the counters and runs granian's handler once; if the worker is still alive
    :data:`WORKER_EXIT_SECONDS` later, it flushes again and exits.  An RSGI worker's event loop
    takes the wakeup fd over (asyncio wakes its loop itself), so it blocks SIGINT only: the
    launcher's SIGTERM is its one stop signal, and its counts are flushed as it exits
    (jpki_mock.ocsp.stats).  The launcher kills a worker still running after
    :data:`STOP_GRACE_SECONDS`."""
    if threading.current_thread() is not threading.main_thread():
        return  # pragma: no cover - granian loads apps on the main thread
    main = threading.main_thread().ident
    if worker == "rsgi":
        # One stop signal, the launcher's SIGTERM: Ctrl-C's SIGINT to the group is not for us.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return
    if worker == "wsgi":
        signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))

        def take() -> None:
            signum = signal.sigwait(set(STOP_SIGNALS))
            deadline = threading.Timer(WORKER_EXIT_SECONDS, _exit_worker)
            deadline.daemon = True  # a worker that leaves in time is not held up by it
            deadline.start()
            ocsp_stats.flush_all()
            handler = signal.getsignal(signum)  # granian's, installed after this factory ran
            if callable(handler):
                handler(signum, None)
            else:  # pragma: no cover - granian always installs one
                _exit_worker()

        threading.Thread(target=take, name="stop-signal", daemon=True).start()
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    wanted = {int(s) for s in STOP_SIGNALS}

    def relay() -> None:
        forwarded: set[int] = set()
        while True:
            for signum in os.read(read_fd, 64):
                if signum in wanted and signum not in forwarded:
                    forwarded.add(signum)
                    ocsp_stats.flush_all()
                    if main is not None:
                        signal.pthread_kill(main, signum)

    threading.Thread(target=relay, name="stop-signal-relay", daemon=True).start()


def _interface(config: Config) -> str:
    """granian's interface for this configuration (:func:`_granian_options`)."""
    return "rsgi" if config.guards_slow_clients else "wsgi"


def exit_now(code: int = 0) -> None:
    """Leave a stopped launcher at once: the workers are gone and the runtime is closed, and
    the interpreter's own teardown of everything the launcher loaded (granian's handles among
    them) took about a second, half the time a service is given to stop."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_worker() -> None:
    ocsp_stats.flush_all()
    exit_now()


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


def access_log(config: Config) -> accesslog.AccessLog | None:
    """The access log of a worker (``log.access``, ``log.format``), or None when it is off."""
    return accesslog.from_settings(config.log.access, config.log.format)


def with_log_flags(config: Config, log_format: str | None, access: bool | None) -> Config:
    """``config`` with ``--log-format`` / ``--access-log`` applied (a flag wins over the
    environment and the file)."""
    changes: dict[str, Any] = {}
    if log_format is not None:
        changes["format"] = log_format
    if access is not None:
        changes["access"] = access
    return config.replace(log=dataclasses.replace(config.log, **changes)) if changes else config


def app_factory() -> Any:
    """Entry point for the combined server's granian workers (``--factory``)."""
    config = load_config()
    _stop_on_signal(_interface(config))  # before the app starts any thread
    app = create_app(Runtime.open(config))
    access = access_log(config)
    if not config.guards_slow_clients:
        return access.wrap(app) if access is not None else app
    return RsgiBridge(app, combined_limits(config), combined_threads(config), combined_inline(config), access)


def ocsp_app_factory() -> Any:
    """Entry point for granian workers of ``jpki-mock ocsp serve`` (configuration from the environment)."""
    config = load_config()
    _stop_on_signal(_interface(config))  # before the app starts any thread
    rt = Runtime.open(config)
    app = ocsp_http.make_app(rt.config, rt.clock, rt.store, rt.status, rt.keyring, rt.epoch)
    threads = int(os.environ.get(THREADS_ENV) or rt.config.ocsp.serve_threads)
    access = access_log(rt.config)
    served: Any
    if rt.config.guards_slow_clients:
        served = RsgiBridge(app, ocsp_limits(rt.config), threads, access=access)
    else:
        served = access.wrap(app) if access is not None else app
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

    common: dict[str, Any] = {"factory": True, "log_access": False, "backlog": 2048,
                              "workers_kill_timeout": STOP_GRACE_SECONDS}
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
    for label, certs in info["ca_certificates"].items():
        print(f"  CA  {label:8s}: {certs['der']} (.pem too)", file=out)
    print(f"  metrics   : {info['metrics']}   health: {info['healthz']}, {info['readyz']}", file=out)
    print(f"  all URLs  : {config.public_url}/   (Ctrl-C stops the server)", file=out)
    out.flush()


def _pass_on(config: Config) -> None:
    """Workers rebuild the configuration from the environment and the file: pass every
    resolved value on (flags included), so that they serve exactly what the launcher
    printed.  The key passphrase only when the file and environment would not give it."""
    os.environ["JPKI_MOCK_DATA"] = str(config.data_dir)
    for name, value in settings(config).items():
        if name not in SECRETS:
            os.environ[env_variable(name)] = str(value).lower() if isinstance(value, bool) else str(value)
    if load_config().key_passphrase != config.key_passphrase:
        os.environ[env_variable("key_passphrase")] = config.key_passphrase


def _run(granian: Any, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; a port taken between the check and granian's own bind is
    the same one-line error."""
    _stop_on_signal(None)
    try:
        granian.serve()
    except OSError as exc:
        raise port_error(host, port, exc) from None


def serve(config: Config, workers: int | None = None, background: bool = True) -> None:
    """Run the combined server (admin API, CRLs, OCSP) on ``config.host:config.port``."""
    from granian import Granian

    ensure_port_free(config.host, config.port)
    rt = Runtime.open(config)
    rt.store.require_initialised()
    # Held until this process ends: `jpki-mock reset` refuses while it is held.
    datadir.hold_server_lock(config.data_dir)
    stop = schedule.start(CrlDeps.of(rt)) if background else None
    print_urls(config, rt)
    _pass_on(config)
    try:
        _run(Granian(
            "jpki_mock.server:app_factory", address=config.host, port=config.port,
            workers=workers or config.workers, **_granian_options(config, combined_threads(config)),
        ), config.host, config.port)
    finally:
        if stop is not None:
            stop()
        rt.close()


def serve_ocsp(config: Config, port: int, workers: int | None = None, threads: int | None = None) -> None:
    """Run the OCSP responder alone on ``config.host:port``; its root path answers."""
    from granian import Granian

    ensure_port_free(config.host, port)
    rt = Runtime.open(config)
    rt.store.require_initialised()
    rt.close()
    datadir.hold_server_lock(config.data_dir)  # as serve() does
    _pass_on(config)
    if threads:
        os.environ[THREADS_ENV] = str(threads)
    print(f"jpki-mock OCSP responder on http://{config.host}:{port}/ (data: {config.data_dir})", flush=True)
    _run(Granian(
        "jpki_mock.server:ocsp_app_factory", address=config.host, port=port,
        workers=workers or config.ocsp.workers,
        **_granian_options(config, threads or config.ocsp.serve_threads),
    ), config.host, port)
