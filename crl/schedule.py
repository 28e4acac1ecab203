"""The CRL schedule of the running server (started by the launcher, :mod:`jpki_mock.server`).

J-LIS publishes its CRLs daily (docs/sources.md section 4, [S]); ``crl.period_seconds``
(default 86400) sets the period and ``crl.delta_period_seconds`` that of the delta CRLs.  The
first pass runs before the server accepts requests, so every CRLDP URI answers from the first
request; then a thread publishes each stream whose period has passed (and a fresh delta after
every new complete CRL).
``crl.schedule = false`` turns it off (publish with ``jpki-mock crl publish`` instead).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from jpki_mock.config import CrlConfig
from jpki_mock.crl.publisher import CrlDeps, Publisher

log = logging.getLogger("jpki_mock.crl.schedule")


def tick_seconds(cfg: CrlConfig) -> float:
    """How often to look for due streams: a quarter of the shortest period, between 0.5 s and 60 s."""
    shortest = min(cfg.period_seconds, cfg.delta_period_seconds) if cfg.delta else cfg.period_seconds
    return min(60.0, max(0.5, shortest / 4))


def run_once(publisher: Publisher) -> int:
    done, failed = publisher.publish_due()
    for stream, exc in failed:
        log.error("CRL %s not published (the previous one stays served): %s", stream.label, exc)
    return len(done)


def start(deps: CrlDeps) -> Callable[[], None]:
    """Recover from a crash of an earlier publisher (even with the schedule off: the served files
    and the store must agree before the first request), publish what is due now, then keep
    doing so in a thread; returns the function that stops it."""
    publisher = Publisher(deps)
    publisher.recover()
    if not deps.config.crl.schedule:
        return lambda: None
    run_once(publisher)
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.wait(tick_seconds(deps.config.crl)):
            try:
                run_once(publisher)
            except Exception:  # e.g. the database is briefly unavailable: try again next tick
                log.exception("CRL schedule pass failed")

    thread = threading.Thread(target=loop, name="crl-schedule", daemon=True)
    thread.start()

    def stop() -> None:
        stopping.set()
        thread.join(timeout=30)

    return stop
