"""ca.der, the encoders shared by seeding, the CRL writer and the OCSP responder, against
asn1crypto's encoder (an independent DER implementation)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asn1crypto import core

from jpki_mock import der


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 1_000_001, 2**63 - 1, 2**159 + 5])
def test_integer_matches_asn1crypto(value):
    assert der.integer(value) == core.Integer(value).dump()


def test_negative_integer_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        der.integer(-1)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 256, 65535, 65536, 40_000_000])
def test_length_forms(n):
    assert der.tlv(0x04, b"\0" * n) == core.OctetString(b"\0" * n).dump()
    assert der.header(0x04, n) + b"\0" * n == core.OctetString(b"\0" * n).dump()


@pytest.mark.parametrize("when, tag", [
    (datetime(2026, 11, 26, 3, 4, 5, tzinfo=UTC), core.UTCTime),
    (datetime(1950, 1, 1, tzinfo=UTC), core.UTCTime),
    (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), core.UTCTime),
    (datetime(2050, 1, 1, tzinfo=UTC), core.GeneralizedTime),  # RFC 5280 section 4.1.2.5
    (datetime(1949, 12, 31, 23, 59, 59, tzinfo=UTC), core.GeneralizedTime),
])
def test_x509_time(when, tag):
    encoded = der.x509_time(when)
    assert encoded == tag(when).dump()
    assert tag.load(encoded).native == when


def test_generalized_time_drops_fractions():
    when = datetime(2026, 11, 26, 3, 4, 5, 999_999, tzinfo=UTC)
    assert der.generalized_time(when) == core.GeneralizedTime(when.replace(microsecond=0)).dump()


@pytest.mark.parametrize("dotted", ["1.3.6.1.5.5.7.48.1.2", "2.5.29.17", "1.2.392.200149.8.5.5.1", "2.999.16384",
                                    "0.39"])
def test_oid_matches_asn1crypto(dotted):
    assert der.oid(dotted) == core.ObjectIdentifier(dotted).dump()


@pytest.mark.parametrize("bad, message", [
    ("1", "not an object identifier"),
    ("3.1", "not an object identifier"),
    ("1.40", "not an object identifier"),
    ("x.y", "invalid literal for int"),
])
def test_bad_oid_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        der.oid(bad)
