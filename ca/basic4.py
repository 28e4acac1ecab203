"""The holder's "basic four" items (基本4情報) and their JPKI encodings [C].

- name: surname + full-width space (U+3000) + given name
- date of birth: era digit (0 unknown, 1 Meiji, 2 Taisho, 3 Showa, 4 Heisei, 5 Reiwa) + Gregorian YYYYMMDD
- gender: ``1`` male, ``2`` female, ``3`` unknown
- address: from the prefecture, no postcode, at most 200 characters
- substitute-character flags: one ``0``/``1`` per character of the name / address

:func:`validate` checks caller input and returns a :class:`Basic4`; it raises
:class:`~ca.errors.InvalidInput` naming the field, what was wrong and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from jpki_mock import municipalities
from jpki_mock.errors import InvalidInput

FULLWIDTH_SPACE = "\u3000"
MAX_ADDRESS = 200
MAX_NAME = 100

ERAS = {0: "unknown", 1: "Meiji", 2: "Taisho", 3: "Showa", 4: "Heisei", 5: "Reiwa"}
# First day of each era (the day the era name took effect).
_ERA_START = {
    1: date(1868, 1, 25),
    2: date(1912, 7, 30),
    3: date(1926, 12, 25),
    4: date(1989, 1, 8),
    5: date(2019, 5, 1),
}
GENDERS = {"1": "male", "2": "female", "3": "unknown"}


def era_of(day: date) -> int:
    era = 0
    for digit, start in _ERA_START.items():
        if day >= start:
            era = digit
    if era == 0:
        raise InvalidInput(f"{day.isoformat()} is before the Meiji era", field="date_of_birth")
    return era


def encode_dob(day: date) -> str:
    """``1980-12-31`` -> ``319801231`` (Showa)."""
    return f"{era_of(day)}{day:%Y%m%d}"


def decode_dob(value: str, field: str = "date_of_birth") -> date:
    """Parse and check an encoded date of birth; the era digit must match the date (0 = unknown era)."""
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        raise InvalidInput(
            f"{value!r} is not an era digit followed by YYYYMMDD", field=field,
            allowed="9 digits, e.g. 319801231 (Showa, 1980-12-31), or an ISO date 1980-12-31",
        )
    era = int(value[0])
    if era not in ERAS:
        raise InvalidInput(f"unknown era digit {value[0]!r}", field=field, allowed={str(k): v for k, v in ERAS.items()})
    try:
        day = date(int(value[1:5]), int(value[5:7]), int(value[7:9]))
    except ValueError:
        raise InvalidInput(f"{value[1:]!r} is not a real calendar date", field=field) from None
    if era != 0 and era_of(day) != era:
        raise InvalidInput(
            f"{day.isoformat()} falls in the {ERAS[era_of(day)]} era, not {ERAS[era]}",
            field=field, allowed=f"era digit {era_of(day)} for this date",
        )
    return day


def parse_dob(value: Any, field: str = "date_of_birth") -> tuple[str, date]:
    """Accept either the JPKI encoding or an ISO date; return (encoding, date)."""
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field)
    if "-" in value:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{value!r} is not a real ISO date (YYYY-MM-DD)", field=field) from None
        return encode_dob(day), day
    day = decode_dob(value, field)
    return value, day


@dataclass(frozen=True)
class Basic4:
    name: str
    date_of_birth: str  # JPKI encoding, e.g. 319801231
    gender: str
    address: str
    name_flags: str
    address_flags: str
    municipality: str  # 5-digit code, the CRL partition

    @property
    def birth_date(self) -> date:
        return decode_dob(self.date_of_birth)

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name, "date_of_birth": self.date_of_birth, "gender": self.gender,
            "address": self.address, "name_flags": self.name_flags, "address_flags": self.address_flags,
            "municipality": self.municipality,
        }


def _text(data: Mapping[str, Any], key: str) -> str:
    if key not in data or data[key] is None:
        raise InvalidInput("is required", field=key)
    value = data[key]
    if not isinstance(value, str):
        raise InvalidInput(f"must be a string, got {type(value).__name__}", field=key)
    if not value:
        raise InvalidInput("must not be empty", field=key)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidInput("contains control characters", field=key)
    return value


def _flags(data: Mapping[str, Any], key: str, of: str, text: str) -> str:
    value = data.get(key)
    if value is None:
        return "0" * len(text)
    if not isinstance(value, str) or set(value) - {"0", "1"}:
        raise InvalidInput("must be a string of 0 and 1", field=key, allowed="one 0/1 per character")
    if len(value) != len(text):
        raise InvalidInput(
            f"has {len(value)} flags but {of} has {len(text)} characters", field=key,
            allowed=f"exactly {len(text)} characters of 0 or 1",
        )
    return value


def validate(data: Mapping[str, Any]) -> Basic4:
    """Check caller-supplied basic-four data and return it in JPKI form."""
    if not isinstance(data, Mapping):
        raise InvalidInput("holder data must be a JSON object", field="body")
    name = _text(data, "name")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"is {len(name)} characters long", field="name", allowed=f"at most {MAX_NAME}")
    parts = name.split(FULLWIDTH_SPACE)
    if len(parts) < 2 or not all(parts) or " " in name:
        raise InvalidInput(
            "must be surname, a full-width space (U+3000) and given name, e.g. 山田\u3000太郎",
            field="name", allowed="surname + U+3000 + given name",
        )
    dob, _ = parse_dob(_text(data, "date_of_birth"))
    gender = data.get("gender")
    if isinstance(gender, int) and not isinstance(gender, bool):
        gender = str(gender)
    if not isinstance(gender, str) or gender not in GENDERS:  # a list or object is not hashable
        raise InvalidInput(f"{data.get('gender')!r} is not a JPKI gender code", field="gender", allowed=GENDERS)
    address = _text(data, "address")
    if len(address) > MAX_ADDRESS:
        raise InvalidInput(f"is {len(address)} characters long", field="address", allowed=f"at most {MAX_ADDRESS}")
    if not address.startswith(municipalities.PREFECTURES_JA):
        raise InvalidInput(
            "must start with the prefecture (no postcode), e.g. 東京都千代田区…", field="address",
        )
    code = data.get("municipality")
    if code is None:
        muni = municipalities.for_address(address)
    else:
        if not isinstance(code, str):
            raise InvalidInput("must be a municipality code string", field="municipality",
                               allowed="5 digits (13105), or 6 with the JIS X 0402 check digit (131059)")
        muni = municipalities.get(code)
        if not muni.holds(address):
            raise InvalidInput(
                f"address is not in {muni.address_prefix} (municipality {muni.code})", field="address",
                allowed=list(muni.address_prefixes),
            )
    return Basic4(
        name=name,
        date_of_birth=dob,
        gender=gender,
        address=address,
        name_flags=_flags(data, "name_flags", "name", name),
        address_flags=_flags(data, "address_flags", "address", address),
        municipality=muni.code,
    )


def age_on(birth: date, day: date) -> int:
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def nth_birthday_after(birth: date, day: date, n: int) -> date:
    """The n-th birthday strictly after ``day``; a 29 February birthday falls on 28 February in
    common years (our choice: docs/profile.md)."""

    def birthday_in(year: int) -> date:
        try:
            return birth.replace(year=year)
        except ValueError:
            return date(year, 2, 28)

    first = birthday_in(day.year)
    if first <= day:
        first = birthday_in(day.year + 1)
    return birthday_in(first.year + n - 1)
