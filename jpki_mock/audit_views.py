"""Reading the audit log (:mod:`jpki_mock.audit`): ``jpki-mock audit`` and ``GET /admin/api/audit``,
with the same filters: ``since`` (a duration ago, or a time), ``action`` (a name, or its first
part: ``cert`` matches ``cert.revoke``) and ``limit``; the API pages backwards with ``before``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import click
from flask import Blueprint, Response, jsonify, request

from jpki_mock import audit
from jpki_mock.commands import Ctx, echo_json, pass_ctx
from jpki_mock.errors import InvalidInput, JpkiError
from jpki_mock.travel import parse_delta, parse_time
from jpki_mock.web import args_dict, runtime

SINCE_HELP = "a duration ago (30m, 2h, 7d) or an ISO 8601 time with a zone (2027-01-01T00:00:00Z)"


def parse_since(value: str, now: datetime, field: str = "since") -> datetime:
    """``30m``, ``2h``, ``7d`` before ``now`` (the real time), or an ISO 8601 time with a zone."""
    text = value.strip()
    try:
        if text[:1].isdigit() and text[-1:] in ("s", "m", "h", "d"):
            return now - parse_delta(text, field)
        return parse_time(text, field)
    except JpkiError:
        raise InvalidInput(f"{value!r} is neither a duration nor a time", field=field, allowed=SINCE_HELP) from None


def parse_limit(value: Any, field: str = "limit") -> int:
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= audit.MAX_LIMIT:
        raise InvalidInput(f"{value!r} is out of range", field=field, allowed=f"1-{audit.MAX_LIMIT}")
    return int(text)


def parse_action(value: str, field: str = "action") -> str:
    if not 1 <= len(value) <= 64 or not value.isprintable():
        raise InvalidInput(f"{value!r} is not an action name", field=field, allowed="e.g. cert.revoke, or cert")
    return value


# ------------------------------------------------------------------ CLI
@click.command("audit")
@click.option("--since", default=None, help=f"Only entries since then: {SINCE_HELP}.")
@click.option("--action", default=None, help="Only this action (cert.revoke), or a group of them (cert).")
@click.option("--limit", default=str(audit.DEFAULT_LIMIT), show_default=True,
              help=f"The latest this many entries (1-{audit.MAX_LIMIT}).")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@pass_ctx
def audit_cli(c: Ctx, since: str | None, action: str | None, limit: str, as_json: bool) -> None:
    """The audit log: every admin mutation through the API or this CLI, oldest first."""
    rows = audit.entries(c.ready().store,
                         since=parse_since(since, datetime.now(UTC), "--since") if since is not None else None,
                         action=parse_action(action, "--action") if action is not None else None,
                         limit=parse_limit(limit, "--limit"))
    rows.reverse()
    if as_json:
        echo_json([e.as_dict() for e in rows])
        return
    for e in rows:
        click.echo(audit.text_line(e))


# ------------------------------------------------------------------ admin API
bp = Blueprint("audit", __name__)


@bp.get("/audit")
def audit_api() -> Response:
    """``GET /admin/api/audit?since=&action=&limit=&before=``: newest first, ``next`` is the
    following page's URL (None on the last page)."""
    args = args_dict("since", "action", "limit", "before")
    limit = parse_limit(args.get("limit", audit.DEFAULT_LIMIT))
    before = None
    if "before" in args:
        text = args["before"]
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise InvalidInput(f"{text!r} is not an entry id", field="before", allowed="an id from a previous page")
        before = int(text)
    rows = audit.entries(runtime().store,
                         since=parse_since(args["since"], datetime.now(UTC)) if "since" in args else None,
                         action=parse_action(args["action"]) if "action" in args else None,
                         limit=limit, before=before)
    following = None
    if len(rows) == limit:
        query = {k: v for k, v in args.items() if k != "before"}
        following = f"{request.path}?{urlencode({**query, 'before': rows[-1].id})}"
    return jsonify({"entries": [e.as_dict() for e in rows], "next": following})
