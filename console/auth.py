"""Signing in to the console: the admin token, a session cookie, a CSRF token on every form.

The token itself never goes into the cookie: the session holds its SHA-256, checked against the
live tokens on every request, so a token revoked with ``jpki-mock token --revoke`` signs its
sessions out at once.  The cookie is HttpOnly and SameSite=Strict (RFC 6265bis section 4.1.2.7),
and every POST carries the session's CSRF token as well (OWASP's synchronizer-token pattern):
SameSite alone does not cover older browsers or same-site subdomains.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from flask import Flask, abort, request, session
from sqlalchemy import select

from jpki_mock.access import ApiToken
from jpki_mock.db import Store
from jpki_mock.errors import Unauthorized
from jpki_mock.private import write_private

SECRET_FILE = "console-session.key"
CSRF_FIELD = "csrf_token"


def session_secret(data_dir: Path) -> bytes:
    """The data directory's session-signing key, shared by every worker; created once, 0600.

    Created under a temporary name and linked into place, so two workers starting together
    agree on one key (the loser of the race reads the winner's)."""
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        tmp = write_private(path.with_name(f".{SECRET_FILE}.{os.getpid()}"), secrets.token_bytes(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


def configure(app: Flask, data_dir: Path) -> None:
    app.secret_key = session_secret(data_dir)
    app.config.update(SESSION_COOKIE_NAME="jpki_mock_console", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/console")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def live_label(store: Store, digest: str) -> str | None:
    """The label of the live admin token with this SHA-256, or None (revoked or unknown)."""
    with store.session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_sha256 == digest, ApiToken.revoked.is_(False))).first()
        return row.label if row is not None else None


def sign_in(store: Store, token: str) -> str:
    token = token.strip()
    if not token:
        raise Unauthorized("is required", field="token", allowed="an admin token (jpki-mock token)")
    label = live_label(store, token_digest(token))
    if label is None:
        raise Unauthorized("is not a live admin token", field="token", allowed="an admin token (jpki-mock token)")
    session.clear()
    session["token"] = token_digest(token)
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return label


def signed_in(store: Store) -> str | None:
    """The signed-in token's label, or None; a session whose token was revoked is cleared."""
    digest = session.get("token")
    if not digest:
        return None
    label = live_label(store, digest)
    if label is None:
        session.clear()
    return label


def csrf_token() -> str:
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(session[CSRF_FIELD])


def check_csrf() -> None:
    """Every POST must echo the session's token; a mismatch is 403 and changes nothing."""
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(str(expected), sent):
        abort(403, description="the form's CSRF token is missing or does not match this session: reload the page")
