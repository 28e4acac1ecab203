"""jpki_mock.der's header reader (the CRL checker and HTTP server use it) against encodings made by
asn1crypto, an independent DER implementation."""

from __future__ import annotations

import pytest
from asn1crypto import core

from jpki_mock import der
from jpki_mock.errors import MalformedData


@pytest.mark.parametrize("size", [0, 5, 127, 128, 255, 256, 70_000])
def test_read_tlv_finds_the_content_of_short_and_long_forms(size):
    encoded = core.OctetString(b"\x01" * size).dump()
    assert der.read_tlv(encoded, 0, len(encoded)) == (0x04, len(encoded) - size, len(encoded))
    assert der.read_tlv(memoryview(encoded), 0, len(encoded)) == (0x04, len(encoded) - size, len(encoded))


class _Pair(core.Sequence):
    _fields = [("n", core.Integer), ("s", core.OctetString)]  # noqa: RUF012 - asn1crypto reads this class attribute  # noqa: RUF012 - asn1crypto reads this class attribute


def test_read_tlv_at_an_offset_inside_a_sequence():
    encoded = _Pair({"n": 5, "s": b"ab"}).dump()  # 30 07 02 01 05 04 02 61 62
    _, start, end = der.read_tlv(encoded, 0, len(encoded))
    _, _int_start, int_end = der.read_tlv(encoded, start, len(encoded))
    assert core.Integer.load(encoded[start:int_end]).native == 5
    assert der.read_tlv(encoded, int_end, len(encoded)) == (0x04, int_end + 2, end)


def test_read_tlv_rejects_truncated_and_overlong():
    assert der.read_tlv(b"\x30\x03\x02\x01\x05", 0, 5) == (0x30, 2, 5)
    with pytest.raises(MalformedData, match="runs past"):
        der.read_tlv(b"\x30\x05\x02\x01", 0, 4)
    assert der.read_tlv(b"\x30\x05\x02\x01", 0, 4, partial=True) == (0x30, 2, 7)
    with pytest.raises(MalformedData, match="truncated"):
        der.read_tlv(b"\x30", 0, 1)
    with pytest.raises(MalformedData, match="length octets"):
        der.read_tlv(b"\x30\x80", 0, 2)  # BER indefinite length


def test_bit_string_matches_asn1crypto():
    signature = bytes(range(256))
    assert der.bit_string(signature) == core.OctetBitString(signature).dump()
