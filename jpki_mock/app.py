"""The composition root of a worker process: one WSGI app for the admin API, CRLs and OCSP.

Flask's application-factory pattern: :func:`create_admin_app` registers every blueprint by
name (no string tables), and :func:`create_app` mounts the two raw WSGI parts in front of it,
routed by path prefix before any framework runs, so the OCSP hot path never touches Flask.

While the database is unreachable the admin API answers 503 with a JSON error naming it
(``storage_unavailable``, Retry-After), logged once per outage (jpki_mock.db.Outage); ``/healthz``
says the process answers, ``/readyz`` whether the database does and a CA is initialised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from jpki_mock import apidoc, errors
from jpki_mock.ca import api as ca_api
from jpki_mock.crl import admin as crl_admin
from jpki_mock.crl import http as crl_http
from jpki_mock.crl.publisher import CrlDeps
from jpki_mock.db import outage_reason
from jpki_mock.kit import api as kit_api
from jpki_mock.kit import timetravel as kit_timetravel
from jpki_mock.ocsp import admin as ocsp_admin
from jpki_mock.ocsp import http as ocsp_http
from jpki_mock.public import pages
from jpki_mock.runtime import Runtime
from jpki_mock.web import RUNTIME_KEY, http_status

log = logging.getLogger("jpki_mock.app")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: every admin blueprint, mounted under /admin/api behind the bearer token
ADMIN_BLUEPRINTS = (ca_api.bp, crl_admin.bp, ocsp_admin.bp, kit_api.bp, kit_timetravel.bp, apidoc.bp)

class PrefixDispatcher:
    """Route by path prefix before any framework runs: the OCSP hot path never touches Flask."""

    def __init__(self, default: WSGIApp, mounts: list[tuple[str, WSGIApp]]):
        self.default = default
        self.mounts = sorted(mounts, key=lambda m: -len(m[0]))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        for prefix, app in self.mounts:
            if path == prefix or path.startswith(prefix + "/"):
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                environ["PATH_INFO"] = path[len(prefix):]
                return app(environ, start_response)
        return self.default(environ, start_response)


def create_admin_app(rt: Runtime) -> Flask:
    """The Flask app: the public pages and the admin API (every blueprint); the one place where
    domain errors become JSON error answers."""
    app = Flask("jpki_mock_admin")
    app.extensions[RUNTIME_KEY] = rt
    app.config["MAX_CONTENT_LENGTH"] = rt.config.max_body_bytes
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False

    @app.before_request
    def _auth() -> None:
        # The API reference (index, OpenAPI document, its page) holds no data: no token needed.
        if request.path.startswith("/admin/api") and request.endpoint not in apidoc.PUBLIC_ENDPOINTS:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            rt.registry.check_token(token.strip() if scheme.lower() == "bearer" else None)
            g.authenticated = True

    @app.errorhandler(errors.JpkiError)
    def _domain_error(err: errors.JpkiError) -> Response:
        status = http_status(err)
        resp = jsonify(err.to_dict())
        resp.status_code = status
        if status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="jpki-mock admin"'
        elif status == 503:  # RFC 9110 section 10.2.3: when to try again
            resp.headers["Retry-After"] = "1"
        return resp

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_err: RequestEntityTooLarge) -> tuple[Response, int]:
        return jsonify(errors.TooLarge("body is too large", field="body",
                                       allowed=f"at most {rt.config.max_body_bytes} bytes").to_dict()), 413

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        resp = jsonify({"error": (err.name or "error").lower().replace(" ", "_"), "message": err.description})
        resp.status_code = err.code or 500
        # Keep the exception's own headers: a 405 MUST list the allowed methods (RFC 9110 section 15.5.6).
        for name, value in err.get_headers():
            if name.lower() != "content-type":
                resp.headers[name] = value
        return resp

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response | tuple[Response, int]:
        reason = outage_reason(err)
        if reason is not None:
            # An outage, not a bug: 503 naming the database, logged once (not a traceback per request).
            return _domain_error(rt.store.outage.report(reason))
        log.error("unexpected error on %s %s", request.method, request.path, exc_info=err)
        return jsonify({"error": "internal_error", "message": "internal error; see the server log"}), 500

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: this process answers.  No database read, so an outage does not make an
        orchestrator restart a server that will recover by itself."""
        resp = jsonify({"status": "alive"})
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/readyz")
    def readyz() -> Response:
        """Readiness: the database answers and a CA is initialised; else 503 and why."""
        err = rt.store.readiness()
        resp = jsonify({"status": "ready"} if err is None else {"status": "not_ready", **err.to_dict()})
        resp.headers["Cache-Control"] = "no-store"
        if err is not None:
            resp.status_code = 503
            resp.headers["Retry-After"] = "1"
        return resp

    app.register_blueprint(pages.bp)
    for blueprint in ADMIN_BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix="/admin/api")
    return app


def create_app(rt: Runtime | None = None) -> PrefixDispatcher:
    """The combined server's WSGI app for one worker process."""
    rt = rt or Runtime.open()
    ocsp = ocsp_http.make_app(rt.config, rt.clock, rt.store, rt.status, rt.keyring, rt.epoch)
    app = PrefixDispatcher(create_admin_app(rt), [("/ocsp", ocsp), ("/crl", crl_http.make_app(CrlDeps.of(rt)))])
    app.runtime = rt  # type: ignore[attr-defined]
    return app
