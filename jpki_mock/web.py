"""Small web helpers every HTTP part shares: the error -> HTTP status table, JSON bodies,
conditional GET (ETag / If-None-Match, If-Modified-Since) and the running process's services.

Errors from the domain tree (:mod:`jpki_mock.errors`) become HTTP statuses here and only
here: 400 invalid input, 401 missing/bad token, 403 forbidden, 404 not found, 409 illegal
state change, 413 too large, 503 overloaded / storage down.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from flask import current_app, request

from jpki_mock import errors

HTTP_STATUS: list[tuple[type[errors.JpkiError], int]] = [
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.UnknownIssuer, 404),
    (errors.NotFound, 404),
    (errors.TooLarge, 413),
    (errors.InvalidInput, 400),
    (errors.Conflict, 409),
    (errors.NotInitialised, 503),
    (errors.Overloaded, 503),
    (errors.StorageError, 503),
    (errors.PublishError, 409),
    (errors.ConfigError, 500),
]

#: where the composition root (:func:`jpki_mock.app.create_app`) keeps the process's services
RUNTIME_KEY = "jpki_runtime"


def http_status(err: errors.JpkiError) -> int:
    for cls, code in HTTP_STATUS:
        if isinstance(err, cls):
            return code
    return 400


def runtime() -> Any:
    """The services of the running process (:class:`jpki_mock.runtime.Runtime`), for a Flask view.
    Typed loosely on purpose: the parts read the fields they need and never import the root."""
    return current_app.extensions[RUNTIME_KEY]


def body() -> dict[str, Any]:
    """The JSON object body of the current Flask request; a specific error for anything else."""
    cap = runtime().config.max_body_bytes
    if request.content_length is not None and request.content_length > cap:
        raise errors.TooLarge(f"body is {request.content_length} bytes", field="body", allowed=f"at most {cap} bytes")
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    if request.mimetype != "application/json":
        raise errors.InvalidInput(f"content type {request.mimetype or 'none'!r} is not JSON", field="Content-Type",
                                  allowed="application/json")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise errors.InvalidInput("is not a JSON object", field="body")
    return data


def args_dict(*names: str) -> dict[str, Any]:
    """The current request's query parameters, refusing any not in ``names``."""
    unknown = set(request.args) - set(names)
    if unknown:
        raise errors.InvalidInput(f"unknown query parameter(s) {sorted(unknown)}", field=sorted(unknown)[0],
                                  allowed=list(names))
    return {k: request.args[k] for k in names if k in request.args}


def iso(dt: datetime | None) -> str | None:
    """RFC 3339 UTC with a ``Z``, as every JSON answer writes times."""
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match (RFC 9110 section 13.1.2): a list of tags, weak comparison, or ``*``."""
    if header == etag:
        return True
    for listed in header.split(","):
        tag = listed.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def not_modified(environ: dict[str, Any], etag: str, last_modified: datetime) -> bool:
    """Whether a conditional GET may be answered 304 (RFC 9110 section 13.2.2: If-None-Match
    wins over If-Modified-Since; an invalid date is ignored, section 13.1.3)."""
    inm = environ.get("HTTP_IF_NONE_MATCH")
    if inm is not None:
        return etag_matches(inm, etag)
    ims = environ.get("HTTP_IF_MODIFIED_SINCE")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return last_modified <= since
    return False
