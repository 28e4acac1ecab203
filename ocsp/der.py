"""A small, strict DER reader and the few encoders the responder needs (X.690).

Strict means: definite lengths only, minimal length octets, no trailing bytes where a value
must end, single-octet tags only (OCSP never needs more).  Anything else raises
:class:`DerError`, which the responder turns into ``malformedRequest``.  It exists because
the hot path cannot afford asn1crypto (~10k parses/s) and pyca/cryptography refuses
requests with more than one CertID (PEERS.md).
"""

from __future__ import annotations

from jpki_mock.der import generalized_time, header, oid, tlv  # noqa: F401  (re-exported for the responder)
from jpki_mock.errors import MalformedData

SEQUENCE = 0x30
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
ENUMERATED = 0x0A
BOOLEAN = 0x01
BIT_STRING = 0x03
GENERALIZED_TIME = 0x18


class DerError(MalformedData):
    """The bytes are not the strict DER the reader expects; the message says where."""


def read_tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one TLV starting at ``pos``: returns (tag, content start, content end)."""
    if pos + 2 > end:
        raise DerError(f"truncated header at offset {pos}")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-octet tag at offset {pos}")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0:
            raise DerError(f"indefinite length at offset {pos - 2} (BER, not DER)")
        if n > 4 or pos + n > end:
            raise DerError(f"bad length octets at offset {pos - 2}")
        length = int.from_bytes(data[pos:pos + n], "big")
        if length < 0x80 or data[pos] == 0:
            raise DerError(f"non-minimal length at offset {pos - 2}")
        pos += n
    if pos + length > end:
        raise DerError(f"value at offset {pos} runs past its container ({length} octets)")
    return tag, pos, pos + length


def expect(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """Read a TLV that must carry ``tag``; returns (content start, content end)."""
    got, start, stop = read_tlv(data, pos, end)
    if got != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, found 0x{got:02x} at offset {pos}")
    return start, stop


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """All TLVs inside a constructed value: [(tag, tlv start, content start, content end)]."""
    out = []
    pos = start
    while pos < end:
        # Inline fast path for the common short-form length with a one-octet tag; everything
        # else (and every error) goes through read_tlv's full checks.
        if pos + 2 <= end:
            tag, length = data[pos], data[pos + 1]
            if length < 0x80 and tag & 0x1F != 0x1F and pos + 2 + length <= end:
                out.append((tag, pos, pos + 2, pos + 2 + length))
                pos += 2 + length
                continue
        tag, cstart, cend = read_tlv(data, pos, end)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


def parse_integer(data: bytes, start: int, end: int, what: str) -> int:
    if start == end:
        raise DerError(f"{what}: empty INTEGER")
    if end - start > 1 and ((data[start] == 0 and data[start + 1] < 0x80) or (data[start] == 0xFF and data[start + 1] >= 0x80)):
        raise DerError(f"{what}: non-minimal INTEGER")
    return int.from_bytes(data[start:end], "big", signed=True)


# ------------------------------------------------------------------ encoders


def seq(*parts: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(parts))
