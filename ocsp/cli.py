"""``jpki-mock ocsp``: lookup counts (``ocsp serve``, the standalone responder, is a process the
composition root launches: :mod:`jpki_mock.server`)."""

from __future__ import annotations

import click

from jpki_mock.commands import Ctx, JpkiGroup, echo_json, pass_ctx
from jpki_mock.ocsp import stats
from jpki_mock.ocsp.admin import parse_day


@click.group(cls=JpkiGroup)
def ocsp() -> None:
    """The OCSP responder: serve it on its own, read its counters."""


@ocsp.command("stats")
@click.option("--since", default=None, help="First JST day (YYYY-MM-DD).")
@click.option("--until", default=None, help="Last JST day (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON summary.")
@pass_ctx
def stats_cmd(c: Ctx, since: str | None, until: str | None, as_json: bool) -> None:
    """OCSP lookups counted by day, certificate kind, status and relying party."""
    rt = c.ready()
    data = stats.summary(rt.store, parse_day(since, "--since"), parse_day(until, "--until"))
    if as_json:
        echo_json(data)
        return
    click.echo(f"total lookups: {data['total']}")
    for row in data["rows"]:
        click.echo(f"{row['day']}  {row['kind']:5s} {row['status']:16s} {row['relying_party']:20s} {row['count']:>10d}")
