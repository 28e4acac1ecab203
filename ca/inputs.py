"""Checking what callers (API, CLI, kit) hand the authority: kinds, revocation reasons, serial
numbers and paging.  Each check raises :class:`InvalidInput` naming the field and what it allows."""

from __future__ import annotations

from typing import Any

from jpki_mock.errors import InvalidInput
from jpki_mock.vocab import KINDS, Kind, Reason

MAX_PAGE = 1000
#: "both" is the API's and the CLI's word for a signature and a user-authentication certificate
BOTH = "both"


def kinds_of(value: Any, field: str = "kinds") -> list[Kind]:
    """``"sign"``, ``"auth"``, ``"both"`` or a list of kinds -> ordered list of kinds."""
    if value is None or value == BOTH:
        return list(KINDS)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or any(not isinstance(v, str) or v not in KINDS for v in value):
        raise InvalidInput(f"{value!r} is not a certificate kind", field=field, allowed=[*KINDS, BOTH])
    return [k for k in KINDS if k in value]


def kind_of(value: Any, field: str = "kind") -> Kind:
    """One CA kind."""
    if isinstance(value, str) and value in KINDS:
        return Kind(value)
    raise InvalidInput(f"{value!r} is not a CA kind", field=field, allowed=list(KINDS))


def reason_code(value: Any, field: str = "reason") -> Reason:
    """A CRLReason given by code or by RFC 5280 name (section 5.3.1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value in Reason._value2member_map_:
            return Reason(value)
    elif isinstance(value, str):
        try:
            return Reason.from_name(value)
        except KeyError:
            pass
    raise InvalidInput(f"{value!r} is not a JPKI revocation reason", field=field,
                       allowed=[r.rfc_name for r in Reason])


def parse_serial(value: Any) -> int:
    """Decimal, or hexadecimal with a 0x prefix."""
    if isinstance(value, int) and not isinstance(value, bool):
        serial = value
    elif isinstance(value, str):
        try:
            serial = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
        except ValueError:
            raise InvalidInput(f"{value!r} is not a serial number", field="serial",
                               allowed="decimal, or hexadecimal with 0x") from None
    else:
        raise InvalidInput(f"{value!r} is not a serial number", field="serial")
    if not 0 < serial < 2**159:
        raise InvalidInput(f"{serial} is out of range", field="serial",
                           allowed="1 .. 2^159-1 (RFC 5280 section 4.1.2.2)")
    return serial


def whole_number(value: Any, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise InvalidInput(f"{value!r} is not a whole number", field=field)


def page(limit: Any, offset: Any) -> tuple[int, int]:
    limit, offset = whole_number(limit, "limit"), whole_number(offset, "offset")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"{limit} is out of range", field="limit", allowed=f"1-{MAX_PAGE}")
    if offset < 0:
        raise InvalidInput("must not be negative", field="offset")
    return limit, offset
