"""Admin API: OCSP lookup counts (``GET /admin/api/ocsp/stats``), behind the admin bearer token."""

from __future__ import annotations

import re
from datetime import date

from flask import Blueprint, Response, current_app, jsonify

from jpki_mock.errors import InvalidInput
from jpki_mock.ocsp import stats
from jpki_mock.web import args_dict

bp = Blueprint("ocsp_admin", __name__)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(value: str | None, field: str) -> date | None:
    # Absent means no bound; an empty ``?since=`` is refused like any other non-date, so a
    # caller's blank variable is reported rather than silently read as "every day".
    if value is None:
        return None
    if _DAY.fullmatch(value):  # ASCII digits only
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(f"{value!r} is not a date", field=field, allowed="YYYY-MM-DD (JST day)")


@bp.get("/ocsp/stats")
def ocsp_stats() -> Response:
    """Counts by JST day, certificate kind, status and relying party; ``?since=&until=`` (YYYY-MM-DD)."""
    args = args_dict("since", "until")
    since = parse_day(args.get("since"), "since")
    until = parse_day(args.get("until"), "until")
    if since and until and since > until:
        raise InvalidInput("since is after until", field="since")
    rt = current_app.extensions["jpki_runtime"]
    return jsonify(stats.summary(rt.store, since, until))
