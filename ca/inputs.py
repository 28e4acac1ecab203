"""Checking what callers (API, CLI, kit) hand the authority: kinds, revocation reasons, serial
numbers and paging.  Each check raises :class:`InvalidInput` naming the field and what it allows."""

from __future__ import annotations

import re
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


#: column ranges (ca/models.py): Integer ids and generations, BigInteger serials and sequences
MAX_INT32 = 2**31 - 1
MAX_BIGINT = 2**63 - 1
#: RFC 5280 section 4.1.2.2: a serial number is at most 20 octets and positive
MAX_SERIAL = 2**159 - 1
_DECIMAL = re.compile(r"-?[0-9]{1,40}")
_HEX = re.compile(r"0[xX][0-9a-fA-F]{1,40}")


def parse_serial(value: Any) -> int:
    """Decimal, or hexadecimal with a 0x prefix; ASCII digits only (``int()`` would also take
    ``"٣"`` or ``"1_000"``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        serial = value
    elif isinstance(value, str) and (_HEX.fullmatch(value) or _DECIMAL.fullmatch(value)):
        serial = int(value, 16) if value[:2] in ("0x", "0X") else int(value, 10)
    elif isinstance(value, str):
        raise InvalidInput(f"{value!r} is not a serial number", field="serial",
                           allowed="decimal, or hexadecimal with 0x")
    else:
        raise InvalidInput(f"{value!r} is not a serial number", field="serial")
    if not 0 < serial <= MAX_SERIAL:
        raise InvalidInput(f"{serial} is out of range", field="serial",
                           allowed="1 .. 2^159-1 (RFC 5280 section 4.1.2.2)")
    return serial


def whole_number(value: Any, field: str, low: int = -MAX_BIGINT, high: int = MAX_BIGINT) -> int:
    """An integer from JSON or from text of ASCII digits (an optional leading minus), within
    ``low .. high`` (by default what a BigInteger column holds), so no value the database cannot
    compare ever reaches it."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise InvalidInput(f"{value!r} is not a whole number", field=field, allowed=f"{low}-{high}")
    if not low <= number <= high:
        raise InvalidInput(f"{number} is out of range", field=field, allowed=f"{low}-{high}")
    return number


def generation_of(value: Any, field: str = "generation") -> int:
    """A CA generation number (an Integer column)."""
    return whole_number(value, field, 1, MAX_INT32)


def page(limit: Any, offset: Any) -> tuple[int, int]:
    limit = whole_number(limit, "limit", 1, MAX_PAGE)
    offset = whole_number(offset, "offset", 0, MAX_BIGINT)
    return limit, offset
