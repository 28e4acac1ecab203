"""Small web helpers every HTTP part shares: the error -> HTTP status table, JSON bodies,
conditional GET (ETag / If-None-Match, If-Modified-Since) and the running process's services.

Errors from the domain tree (:mod:`jpki_mock.errors`) become HTTP statuses here and only
here: 400 invalid input, 401 missing/bad token, 403 forbidden, 404 not found, 409 illegal
state change, 413 too large, 503 overloaded / storage down.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
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
#: where the combined server hands its OCSP WSGI app to the Flask app (the console asks it in process)
OCSP_APP_KEY = "jpki_ocsp_app"


def http_status(err: errors.JpkiError) -> int:
    for cls, code in HTTP_STATUS:
        if isinstance(err, cls):
            return code
    return 400


def runtime() -> Any:
    """The services of the running process (:class:`jpki_mock.runtime.Runtime`), for a Flask view.
    Typed loosely on purpose: the parts read the fields they need and never import the root."""
    return current_app.extensions[RUNTIME_KEY]


#: how deeply a JSON body may nest: every admin body is an object of scalars, short lists or one
#: level of objects, so 32 is generous; the bound keeps a ``[[[[...`` body from exhausting the stack
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")
#: text a database column cannot hold: NUL (PostgreSQL refuses it in text) and lone surrogates
#: (not encodable as UTF-8, RFC 3629 section 3)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def json_depth(raw: bytes) -> int:
    """How deeply ``raw`` nests arrays and objects, counted without parsing it (brackets inside
    strings do not count), so a hostile body is refused before the parser recurses into it."""
    depth = deepest = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', raw)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_text(value: Any, field: str) -> None:
    """Refuse text no database can store (NUL, lone surrogates) anywhere inside ``value``
    (strings, object keys, nested lists and objects), naming ``field``."""
    if isinstance(value, str):
        bad = _UNSTORABLE.search(value)
        if bad is not None:
            raise errors.InvalidInput(f"contains U+{ord(bad.group()):04X}, which cannot be stored", field=field,
                                      allowed="UTF-8 text without NUL characters or lone surrogates")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, field)
            check_text(v, field)
    elif isinstance(value, list):
        for v in value:
            check_text(v, field)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 section 6)")


def body(allowed: Collection[str], *, query: Collection[str] = ()) -> dict[str, Any]:
    """The JSON object body of the current Flask request, holding only ``allowed`` fields (a 400
    names the first unknown one).  Also refuses query parameters not in ``query``, a body nested
    deeper than :data:`MAX_JSON_DEPTH` or larger than ``max_body_bytes``, NaN/Infinity, and text
    that cannot be stored.  Every view reading a body names its fields, so none can forget."""
    args_dict(*query)
    cap = runtime().config.max_body_bytes
    if request.content_length is not None and request.content_length > cap:
        raise errors.TooLarge(f"body is {request.content_length} bytes", field="body", allowed=f"at most {cap} bytes")
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    if len(raw) > cap:
        raise errors.TooLarge(f"body is {len(raw)} bytes", field="body", allowed=f"at most {cap} bytes")
    if request.mimetype != "application/json":
        raise errors.InvalidInput(f"content type {request.mimetype or 'none'!r} is not JSON", field="Content-Type",
                                  allowed="application/json")
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise errors.InvalidInput("nests too deeply", field="body", allowed=f"at most {MAX_JSON_DEPTH} levels")
    try:
        # RFC 8259 section 8.1: JSON exchanged between systems is UTF-8 (no UTF-16/32 guessing).
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise errors.InvalidInput(f"is not JSON: {exc}", field="body", allowed="a JSON object (RFC 8259)") from None
    if not isinstance(data, dict):
        raise errors.InvalidInput("is not a JSON object", field="body")
    for key, value in data.items():
        check_text(key, "body")
        check_text(value, key)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise errors.InvalidInput(f"unknown field(s) {unknown}", field=unknown[0], allowed=sorted(allowed))
    return data


def args_dict(*names: str) -> dict[str, Any]:
    """The current request's query parameters, refusing any not in ``names``, and text that
    cannot be stored in them or in the path's segments.  Every admin view calls this (directly
    or through :func:`body`) before it uses its input, so none can skip the checks."""
    for key, value in (request.view_args or {}).items():
        check_text(value, key)
    unknown = sorted(set(request.args) - set(names))
    if unknown:
        raise errors.InvalidInput(f"unknown query parameter(s) {unknown}", field=unknown[0], allowed=list(names))
    out = {k: request.args[k] for k in names if k in request.args}
    for k, v in out.items():
        check_text(v, k)
    return out


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
