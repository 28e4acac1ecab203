"""DER encoders shared by the fast paths (X.690 sections 8 and 10).

Three places encode DER by hand because building ASN.1 objects per item costs more than the
item itself: seeding certificates (:mod:`ca.fastcert`), the streaming CRL writer
(:mod:`crl.writer`) and the OCSP responder.  They share these primitives.
tests/ca/test_der_encoders.py checks every encoder against asn1crypto.

The one reader (:func:`read_tlv`, with :func:`expect`, :func:`children`,
:func:`parse_integer` on top) is strict: definite lengths only, minimal length octets, no
value running past its container, single-octet tags only (neither OCSP requests nor the CRL
headers it reads need more).  Anything else raises :class:`DerError`.  It exists because the
OCSP hot path cannot afford asn1crypto (~10k parses/s), pyca/cryptography refuses requests
with more than one CertID, and the CRL checker and HTTP server find a CRL's TBS bytes and times
without decoding its (possibly a million) entries.
"""

from __future__ import annotations

from datetime import datetime

from jpki_mock.errors import MalformedData

# Universal tags (X.690 section 8 / X.680 section 8.4), single octet as DER encodes them.
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
ENUMERATED = 0x0A
SEQUENCE = 0x30
CONTEXT_0 = 0xA0  # [0] EXPLICIT, constructed (e.g. TBSCertList.crlExtensions, RFC 5280 section 5.1)
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18


class DerError(MalformedData):
    """The bytes are not the strict DER the reader expects; the message says where."""


def length(n: int) -> bytes:
    """Definite-form length octets (X.690 section 8.1.3.3-5): short form below 128, else the
    minimal long form."""
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def header(tag: int, n: int) -> bytes:
    """Tag and length octets of a value of ``n`` content octets (single-octet tags only)."""
    if n < 0x80:
        return bytes((tag, n))
    return bytes((tag,)) + length(n)


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:  # the common case on every fast path: one allocation for the header
        return bytes((tag, n)) + content
    return header(tag, n) + content


def integer(value: int) -> bytes:
    """A non-negative INTEGER in minimal two's complement (X.690 section 8.3): a leading 0x00
    when the top bit would otherwise be set.  Serials, versions and CRL numbers are never negative."""
    if value < 0:
        raise ValueError(f"serial numbers, versions and CRL numbers are non-negative, got {value}")
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return tlv(0x02, body)


def x509_time(when: datetime) -> bytes:
    """RFC 5280 section 4.1.2.5: UTCTime for the years 1950-2049, GeneralizedTime outside them,
    in UTC with whole seconds.  ``when`` must already be in UTC (the callers' times all are)."""
    if 1950 <= when.year < 2050:
        return b"\x17\x0d%02d%02d%02d%02d%02d%02dZ" % (
            when.year % 100, when.month, when.day, when.hour, when.minute, when.second)
    return b"\x18\x0f%04d%02d%02d%02d%02d%02dZ" % (
        when.year, when.month, when.day, when.hour, when.minute, when.second)


def generalized_time(when: datetime) -> bytes:
    """GeneralizedTime in UTC with whole seconds (RFC 5280 section 4.1.2.5.2; RFC 6960 times)."""
    return b"\x18\x0f%04d%02d%02d%02d%02d%02dZ" % (
        when.year, when.month, when.day, when.hour, when.minute, when.second)


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER TLV (X.690 section 8.19), for module constants."""
    arcs = [int(p) for p in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"not an object identifier: {dotted!r}")
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def seq(*parts: bytes) -> bytes:
    """A SEQUENCE of already-encoded ``parts``."""
    return tlv(SEQUENCE, b"".join(parts))


def bit_string(data: bytes) -> bytes:
    """BIT STRING with zero unused bits (X.690 section 8.6: a signature value)."""
    return tlv(BIT_STRING, b"\x00" + data)


# ------------------------------------------------------------------ reader


def read_tlv(data: bytes | memoryview, pos: int, end: int, partial: bool = False) -> tuple[int, int, int]:
    """Read one TLV starting at ``pos``: returns (tag, content start, content end).

    ``partial``: ``data[:end]`` is only the beginning of the encoding (the first kilobytes of a
    CRL file), so the value may run past ``end``; its content end is still where the length
    says."""
    if pos + 2 > end:
        raise DerError(f"truncated header at offset {pos}")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-octet tag at offset {pos}")
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        count = n & 0x7F
        if count == 0:
            raise DerError(f"indefinite length octets at offset {pos - 2} (BER, not DER: X.690 section 10.1)")
        if count > 4 or pos + count > end:
            raise DerError(f"bad length octets at offset {pos - 2}")
        n = int.from_bytes(data[pos:pos + count], "big")
        if n < 0x80 or data[pos] == 0:  # X.690 section 10.1: the fewest length octets
            raise DerError(f"non-minimal length at offset {pos - 2}")
        pos += count
    if pos + n > end and not partial:
        raise DerError(f"value at offset {pos} runs past its container ({n} octets)")
    return tag, pos, pos + n


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
            tag, n = data[pos], data[pos + 1]
            if n < 0x80 and tag & 0x1F != 0x1F and pos + 2 + n <= end:
                out.append((tag, pos, pos + 2, pos + 2 + n))
                pos += 2 + n
                continue
        tag, cstart, cend = read_tlv(data, pos, end)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


def parse_integer(data: bytes, start: int, end: int, what: str) -> int:
    """The INTEGER whose content octets are ``data[start:end]``; minimal encoding required
    (X.690 section 8.3.2)."""
    if start == end:
        raise DerError(f"{what}: empty INTEGER")
    if end - start > 1 and ((data[start] == 0 and data[start + 1] < 0x80)
                            or (data[start] == 0xFF and data[start + 1] >= 0x80)):
        raise DerError(f"{what}: non-minimal INTEGER")
    return int.from_bytes(data[start:end], "big", signed=True)
