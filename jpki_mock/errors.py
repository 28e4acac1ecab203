"""One tree of domain errors, translated to HTTP / OCSP status / exit code only at the edges.

Every error carries the data a user needs to fix the problem: which field,
what was wrong and what is allowed.  ``str(err)`` is a complete sentence.
"""

from __future__ import annotations

from typing import Any


class JpkiError(Exception):
    """Base of every error the mock raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, allowed: Any = None, **data: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        self.allowed = allowed
        self.data = data

    def __str__(self) -> str:
        if self.field:
            return f"{self.field}: {self.message}"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": str(self)}
        if self.field is not None:
            out["field"] = self.field
        if self.allowed is not None:
            out["allowed"] = self.allowed
        out.update({k: v for k, v in self.data.items() if v is not None})
        return out


class InvalidInput(JpkiError):
    """A value supplied by the caller is malformed or out of range."""

    code = "invalid_input"


class MalformedData(InvalidInput):
    """Bytes that should be DER/PEM (a key, a CSR, a request) do not parse."""

    code = "malformed"


class TooLarge(InvalidInput):
    """A body or a list exceeds a configured limit."""

    code = "too_large"


class NotFound(JpkiError):
    """The named holder, certificate, CA generation or file does not exist."""

    code = "not_found"


class UnknownIssuer(NotFound):
    """No CA generation matches the given issuer."""

    code = "unknown_issuer"


class Conflict(JpkiError):
    """The request is well formed but the current state forbids it."""

    code = "conflict"


class AlreadyRevoked(Conflict):
    code = "already_revoked"


class HoldNotReleasable(Conflict):
    """JPKI never releases a certificateHold (docs/sources.md section 4)."""

    code = "hold_not_releasable"


class NotEligible(Conflict):
    """The holder may not have this certificate kind (e.g. a signature certificate under 15)."""

    code = "not_eligible"


class NotInitialised(JpkiError):
    """The data directory has no CA yet: run ``jpki-mock init``."""

    code = "not_initialised"


class Unauthorized(JpkiError):
    """Missing or wrong credential."""

    code = "unauthorized"


class Forbidden(JpkiError):
    """Valid credential, but not allowed to do this (e.g. time travel on a shared server)."""

    code = "forbidden"


class ConfigError(JpkiError):
    """A configuration value is missing or invalid; raised at start-up."""

    code = "config_error"


class PublishError(JpkiError):
    """An artefact (CRL, response) failed its pre-publication checks and was not published."""

    code = "publish_refused"


class Overloaded(JpkiError):
    """Too much concurrent work: answer tryLater / 503 rather than queue without bound."""

    code = "overloaded"


class StorageError(JpkiError):
    """The backing store failed; callers degrade rather than answer a bare 500."""

    code = "storage_error"
