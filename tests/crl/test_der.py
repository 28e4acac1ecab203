"""crl.der's own helpers (times, the header reader) against asn1crypto's encoder (an independent DER implementation)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from asn1crypto import core

from jpki_mock.crl import der


@pytest.mark.parametrize("when, tag", [
    (datetime(2026, 11, 26, 3, 4, 5, tzinfo=timezone.utc), core.UTCTime),
    (datetime(1950, 1, 1, tzinfo=timezone.utc), core.UTCTime),
    (datetime(2049, 12, 31, 23, 59, 59, tzinfo=timezone.utc), core.UTCTime),
    (datetime(2050, 1, 1, tzinfo=timezone.utc), core.GeneralizedTime),  # RFC 5280 section 5.1.2.4
])
def test_time_encoding(when, tag):
    encoded = der.time_value(when)
    assert encoded == tag(when).dump()
    assert tag.load(encoded).native == when


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        der.time_value(datetime(2026, 1, 1))


def test_read_header_rejects_truncated_and_overlong():
    assert der.read_header(b"\x30\x03\x02\x01\x05", 0) == (0x30, 2, 5)
    with pytest.raises(ValueError, match="runs past"):
        der.read_header(b"\x30\x05\x02\x01", 0)
    assert der.read_header(b"\x30\x05\x02\x01", 0, partial=True) == (0x30, 2, 7)
    with pytest.raises(ValueError, match="truncated"):
        der.read_header(b"\x30", 0)
    with pytest.raises(ValueError, match="length octets"):
        der.read_header(b"\x30\x80", 0)
