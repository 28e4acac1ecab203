"""DER encoders shared by the fast paths (X.690 sections 8 and 10).

Three places encode DER by hand because building ASN.1 objects per item costs more than the
item itself: seeding certificates (:mod:`ca.fastcert`), the streaming CRL writer
(:mod:`crl.writer`) and the OCSP responder (:mod:`ocsp.der`).  They share these primitives.
tests/ca/test_der_encoders.py checks every encoder against asn1crypto.
"""

from __future__ import annotations

from datetime import datetime

from jpki_mock.errors import MalformedData

UTC_TIME = 0x17
GENERALIZED_TIME = 0x18


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
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


# ---------------------------------------------------------------------------------------------
# Signed lists and their headers (the streaming CRL writer and its readers).
#
# The CRL writer assembles a CertificateList of any size around entries it spilled to disk, so
# it needs the tags and the BIT STRING encoder below; the CRL's checker and HTTP server find the
# TBS bytes and the times with read_header without decoding the (possibly million) entries.

SEQUENCE = 0x30
INTEGER = 0x02
BIT_STRING = 0x03
CONTEXT_0 = 0xA0  # [0] EXPLICIT, constructed (e.g. TBSCertList.crlExtensions, RFC 5280 section 5.1)


def bit_string(data: bytes) -> bytes:
    """BIT STRING with zero unused bits (X.690 section 8.6: a signature value)."""
    return tlv(BIT_STRING, b"\x00" + data)


def read_header(buf, offset: int, partial: bool = False) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``offset`` of ``buf`` (bytes or a memoryview);
    raises :class:`jpki_mock.errors.MalformedData` on bad DER.  ``partial``: ``buf`` is only the
    beginning of the encoding (the first kilobytes of a CRL file), so the element may run past
    its end; its content end is still where the length says."""
    end_of_buf = len(buf)
    if offset + 2 > end_of_buf:
        raise MalformedData(f"truncated DER at offset {offset}", field="der")
    tag, first = buf[offset], buf[offset + 1]
    pos = offset + 2
    if first < 0x80:
        n = first
    else:
        count = first & 0x7F
        # count 0 is BER's indefinite length, which DER forbids (X.690 section 10.1).
        if count == 0 or count > 8 or pos + count > end_of_buf:
            raise MalformedData(f"bad length octets at offset {offset}", field="der")
        n = int.from_bytes(bytes(buf[pos:pos + count]), "big")
        pos += count
    if pos + n > end_of_buf and not partial:
        raise MalformedData(f"element at offset {offset} runs past the end ({pos + n} > {end_of_buf})", field="der")
    return tag, pos, pos + n
