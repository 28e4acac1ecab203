"""``jpki-mock ocsp``: run the standalone responder, show lookup counts."""

from __future__ import annotations

import os

import click

from ca.cli import JpkiGroup, echo_json, pass_ctx
from ca.config import load_config

from . import stats
from .admin import parse_day


@click.group(cls=JpkiGroup)
def ocsp() -> None:
    """The OCSP responder: serve it on its own, read its counters."""


@ocsp.command()
@click.option("--workers", type=int, default=None, help="Worker processes (default: ocsp.workers).")
@click.option("--port", type=int, default=None, help="TCP port (default: ocsp.port, 8081).")
@click.option("--threads", type=int, default=None,
              help="Python threads per worker (default: ocsp.threads; automatic: 1 with revocation_check "
                   "= epoch, 8 with database); live signing is capped by ocsp.live_sign_concurrency.")
def serve(workers: int | None, port: int | None, threads: int | None) -> None:
    """Run the responder alone under granian on HOST (127.0.0.1) and its own port; the root path answers."""
    from granian import Granian
    from granian.constants import Interfaces

    from ca.runtime import Runtime

    config = load_config()
    port = port or config.ocsp.port
    if not 0 < port < 65536:
        raise click.BadParameter(f"{port} is not a TCP port (1-65535)", param_hint="--port")
    if workers is not None and workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    if threads is not None and threads < 1:
        raise click.BadParameter("must be at least 1", param_hint="--threads")
    rt = Runtime.open(config)
    rt.store.require_initialised()
    rt.close()
    # Workers rebuild the configuration from the environment: pass the resolved data dir on.
    os.environ["JPKI_MOCK_DATA"] = str(config.data_dir)
    click.echo(f"jpki-mock OCSP responder on http://{config.host}:{port}/ (data: {config.data_dir})")
    Granian(
        "ocsp.http:app_factory", address=config.host, port=port, interface=Interfaces.WSGI,
        workers=workers or config.ocsp.workers, blocking_threads=threads or config.ocsp.serve_threads, factory=True,
        log_access=False, backlog=2048,
    ).serve()


@ocsp.command("stats")
@click.option("--since", default=None, help="First JST day (YYYY-MM-DD).")
@click.option("--until", default=None, help="Last JST day (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON summary.")
@pass_ctx
def stats_cmd(c, since: str | None, until: str | None, as_json: bool) -> None:
    """OCSP lookups counted by day, certificate kind, status and relying party."""
    rt = c.ready()
    data = stats.summary(rt.store, parse_day(since, "--since"), parse_day(until, "--until"))
    if as_json:
        echo_json(data)
        return
    click.echo(f"total lookups: {data['total']}")
    for row in data["rows"]:
        click.echo(f"{row['day']}  {row['kind']:5s} {row['status']:16s} {row['relying_party']:20s} {row['count']:>10d}")
