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

from jpki_mock import apidoc, audit, audit_views, errors
from jpki_mock.accesslog import REASON
from jpki_mock.ca import api as ca_api
from jpki_mock.console import views as console_views
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
from jpki_mock.web import OCSP_APP_KEY, RUNTIME_KEY, http_status

log = logging.getLogger("jpki_mock.app")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: every admin blueprint, mounted under /admin/api behind the bearer token
ADMIN_BLUEPRINTS = (ca_api.bp, crl_admin.bp, ocsp_admin.bp, kit_api.bp, kit_timetravel.bp, audit_views.bp,
                     apidoc.bp)
#: the methods that ask for a change (RFC 9110 section 9.2.1: not safe): refused ones are audited
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

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
            label = rt.registry.check_token(token.strip() if scheme.lower() == "bearer" else None)
            g.authenticated = True
            # Who is acting, for the operations' audit rows (jpki_mock.audit).  A request without
            # a valid token is not audited: anyone could fill the table (the access log has it).
            g.audit = audit.enter(f"token:{label}", rt.store, rt.clock)

    @app.after_request
    def _refused(resp: Response) -> Response:
        # A change refused before any operation ran (a body that is not JSON, an unknown field,
        # no such route) is recorded under its route, so that every refused admin request has
        # its row; one that reached an operation has that operation's row already.
        scope = audit.scope()
        if scope is not None and resp.status_code >= 400 and request.method in UNSAFE_METHODS \
                and not scope.recorded:
            err = resp.get_json(silent=True) if resp.is_json else None
            err = err if isinstance(err, dict) else {}
            rule = (request.url_rule.rule if request.url_rule is not None else request.path).removeprefix("/admin/api")
            target = " ".join(str(v) for v in (request.view_args or {}).values())
            scope.write(f"{request.method} {rule}", target, str(err.get("error", resp.status_code)),
                        str(err.get("message", "")))
        return resp

    @app.teardown_request
    def _done(_exc: BaseException | None) -> None:
        audit.leave(g.pop("audit", None))

    @app.errorhandler(errors.JpkiError)
    def _domain_error(err: errors.JpkiError) -> Response:
        request.environ[REASON] = str(err)  # the access log says why (jpki_mock.accesslog)
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
        request.environ[REASON] = err.description
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
    app.register_blueprint(console_views.bp)
    for blueprint in ADMIN_BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix="/admin/api")
    return app


def metrics_at_root(ocsp: WSGIApp) -> WSGIApp:
    """``GET /metrics`` of the combined server: the responder's Prometheus text (the lookup
    counters every process shares and this process's responder gauges), where scrapers look
    for it; ``/ocsp/metrics`` stays, as the standalone responder's ``/metrics``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") not in ("", "/"):
            return _not_found(start_response)
        return ocsp({**environ, "PATH_INFO": "/metrics"}, start_response)

    return app


def _not_found(start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b'{"error": "not_found", "message": "not found"}'
    start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def create_app(rt: Runtime | None = None) -> PrefixDispatcher:
    """The combined server's WSGI app for one worker process."""
    rt = rt or Runtime.open()
    ocsp = ocsp_http.make_app(rt.config, rt.clock, rt.store, rt.status, rt.keyring, rt.epoch)
    admin = create_admin_app(rt)
    admin.extensions[OCSP_APP_KEY] = ocsp  # the console asks this responder, in process
    app = PrefixDispatcher(admin, [("/ocsp", ocsp), ("/crl", crl_http.make_app(CrlDeps.of(rt))),
                                   ("/metrics", metrics_at_root(ocsp))])
    app.runtime = rt  # type: ignore[attr-defined]
    return app
