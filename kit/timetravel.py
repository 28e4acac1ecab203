"""Time travel for relying parties: ``/admin/api/clock`` and ``jpki-mock clock`` move the
shared offset of the travelling clock (:mod:`jpki_mock.travel`, docs/time-travel.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from flask import Blueprint, Response, jsonify

from jpki_mock.commands import open_runtime
from jpki_mock.travel import TravellingClock, _iso, parse_delta, parse_time, travelling
from jpki_mock.web import args_dict, body, runtime

# ---------------------------------------------------------------- admin API (/admin/api/clock)
bp = Blueprint("clock", __name__)


@bp.get("/clock")
def show_clock() -> Response:
    args_dict()
    clock = runtime().clock
    if not isinstance(clock, TravellingClock):
        now = _iso(clock.now())
        return jsonify({"enabled": False, "real_now": now, "now": now, "offset_seconds": 0})
    return jsonify(clock.describe())


def _operator_call(field: str | None, apply: Callable[[TravellingClock, Any], Any]) -> Response:
    """Validate the body (only ``field`` allowed), refuse when time travel is off, apply, describe."""
    data = body((field,) if field else ())
    clock = travelling(runtime().clock)
    apply(clock, data.get(field) if field else None)
    return jsonify(clock.describe())


@bp.post("/clock/set")
def set_clock() -> Response:
    return _operator_call("at", lambda clock, at: clock.set(parse_time(at)))


@bp.post("/clock/advance")
def advance_clock() -> Response:
    return _operator_call("by", lambda clock, by: clock.advance(parse_delta(by)))


@bp.post("/clock/reset")
def reset_clock() -> Response:
    return _operator_call(None, lambda clock, _: clock.reset())


# ---------------------------------------------------------------- CLI (jpki-mock clock ...)
def _cli_clock() -> TravellingClock:

    rt = open_runtime()
    rt.close()
    return travelling(rt.clock)


def _echo(clock: TravellingClock) -> None:
    d = clock.describe()
    click.echo(f"now {d['now']} (real {d['real_now']}, offset {d['offset_seconds']:+d} s)")


# A plain group: ``jpki-mock``'s own group translates domain errors raised in any sub-command.
@click.group("clock")
def clock_cli() -> None:
    """Time travel (development only): move "now" for every process on this data directory."""


@clock_cli.command("show")
@click.option("--epoch", is_flag=True,
              help="Print only the mock's now in seconds since 1970 (for openssl's -attime).")
def clock_show(epoch: bool) -> None:
    """Print the mock's current time and the offset from the real time."""

    rt = open_runtime()
    rt.close()
    if epoch:
        click.echo(int(rt.clock.now().timestamp()))
    elif isinstance(rt.clock, TravellingClock):
        _echo(rt.clock)
    else:
        click.echo(f"now {_iso(rt.clock.now())} (time travel disabled)")


@clock_cli.command("set")
@click.argument("at")
def clock_set(at: str) -> None:
    """Move "now" to AT (ISO 8601 with a zone, e.g. 2027-01-01T00:00:00Z); the clock keeps running."""
    clock = _cli_clock()
    clock.set(parse_time(at, "AT"))
    _echo(clock)


@clock_cli.command("advance")
@click.argument("by")
def clock_advance(by: str) -> None:
    """Move "now" by BY (e.g. 1d, 2h30m, -10m)."""
    clock = _cli_clock()
    clock.advance(parse_delta(by, "BY"))
    _echo(clock)


@clock_cli.command("reset")
def clock_reset() -> None:
    """Back to the real time."""
    clock = _cli_clock()
    clock.reset()
    _echo(clock)
