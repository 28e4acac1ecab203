"""Admin API: OCSP lookup counts (``GET /admin/api/ocsp/stats``), behind the admin bearer token."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, current_app, jsonify, request

from jpki_mock.errors import InvalidInput

from jpki_mock.ocsp import stats

bp = Blueprint("ocsp_admin", __name__)


def parse_day(value: str | None, field: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a date", field=field, allowed="YYYY-MM-DD (JST day)") from None


@bp.get("/ocsp/stats")
def ocsp_stats():
    """Counts by JST day, certificate kind, status and relying party; ``?since=&until=`` (YYYY-MM-DD)."""
    since = parse_day(request.args.get("since"), "since")
    until = parse_day(request.args.get("until"), "until")
    if since and until and since > until:
        raise InvalidInput("since is after until", field="since")
    rt = current_app.extensions["jpki_runtime"]
    return jsonify(stats.summary(rt.store, since, until))
