"""What every source of OCSP answers speaks: the :class:`Source` protocol, the request
:class:`Context`, the :class:`Answer`, and the errors a source raises instead of answering.

As in Let's Encrypt Boulder's responder, answers come from a chain of sources with one method
each, ``answer(request, context) -> Answer`` (ocsp/source.py wires it).  The context carries
what is not in the request bytes and would otherwise be read from ambient state deep inside:
the request time (explicitly, as Certomancer passes it, so that a time-travelled request is
answered at its own time), the relying party, and the raw request bytes the answer may be
remembered by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from jpki_mock.errors import Forbidden, Overloaded
from jpki_mock.ocsp import response
from jpki_mock.ocsp.request import MalformedRequest, OcspRequest

CONTENT_TYPE = ("Content-Type", "application/ocsp-response")


@dataclass(frozen=True, slots=True)
class Context:
    """One request's circumstances, fixed by the HTTP handler before any source runs."""

    #: the request time, POSIX seconds: the clock's now, or the time a time-travelled request is
    #: pinned to (docs/time-travel.md)
    at: float
    #: the relying party presenting a credential (jpki_mock.access), or None
    party: Any = None
    #: the raw GET path (str) or POST body (bytes) the answer may be remembered by, or None
    raw: object = None
    #: True when ``at`` is a time-travelled request's own time: its answer is never cached
    pinned: bool = False


class Answer:
    """A response to send: bytes, HTTP status, the cacheable entry (an ocsp.presigned.Entry,
    for the caching headers) and what to count as (kind, status) labels."""

    __slots__ = ("der", "entry", "http", "labels")

    def __init__(self, der_bytes: bytes, http: str = "200 OK", entry: Any = None,
                 labels: list[tuple[str, str]] | None = None):
        self.der = der_bytes
        self.http = http
        self.entry = entry
        self.labels = labels or []


class Source(Protocol):
    """One link of the chain: answers the request, asks the next link, or raises
    MalformedRequest, Unauthorized or Overloaded."""

    def answer(self, request: OcspRequest, context: Context) -> Answer: ...


class Unauthorized(Forbidden):
    """OCSP ``unauthorized`` (RFC 6960 section 2.3): no issuer of ours, CertIDs of several
    issuers, or a relying party not allowed this kind.  ``kind`` is what the answer counts as."""

    code = "unauthorized"

    def __init__(self, message: str, kind: str = "-"):
        super().__init__(message)
        self.kind = kind


HTTP_FOR_STATUS = {
    response.MALFORMED_REQUEST: "400 Bad Request",
    response.INTERNAL_ERROR: "500 Internal Server Error",
    response.TRY_LATER: "503 Service Unavailable",
    response.UNAUTHORIZED: "200 OK",
}
LABEL_FOR_STATUS = {status: response.STATUS_NAMES[status] for status in HTTP_FOR_STATUS}
ERROR_BODIES = {status: response.error_response(status) for status in HTTP_FOR_STATUS}


def error_answer(status: int, kind: str = "-", http: str | None = None) -> Answer:
    """An OCSPResponse without responseBytes for ``status``, counted under ``kind``."""
    return Answer(ERROR_BODIES[status], http or HTTP_FOR_STATUS[status], None, [(kind, LABEL_FOR_STATUS[status])])


__all__ = [
    "CONTENT_TYPE",
    "HTTP_FOR_STATUS",
    "LABEL_FOR_STATUS",
    "Answer",
    "Context",
    "MalformedRequest",
    "Overloaded",
    "Source",
    "Unauthorized",
    "error_answer",
]
