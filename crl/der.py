"""Low-level DER encoding for the streaming CRL writer (X.690 section 8 and 10).

Only what a CRL needs, written for speed: the writer encodes one entry per revoked
certificate, so these helpers avoid building ASN.1 objects.  Anything encoded once per CRL
(names, extensions) is built with asn1crypto instead (see :mod:`crl.extensions`).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from jpki_mock.der import header, integer, length, tlv  # noqa: F401  (re-exported: the writer's vocabulary)

SEQUENCE = 0x30
INTEGER = 0x02
BIT_STRING = 0x03
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
CONTEXT_0 = 0xA0  # [0] EXPLICIT, constructed: TBSCertList.crlExtensions


def time_from_epoch(seconds: int) -> bytes:
    """RFC 5280 section 5.1.2.4/4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, always Z, no fractions."""
    t = time.gmtime(seconds)
    if 1950 <= t.tm_year < 2050:
        return b"\x17\x0d%02d%02d%02d%02d%02d%02dZ" % (
            t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
    return b"\x18\x0f%04d%02d%02d%02d%02d%02dZ" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def time_value(when: datetime) -> bytes:
    if when.tzinfo is None:
        raise ValueError("CRL times must be timezone-aware UTC datetimes")
    return time_from_epoch(int(when.astimezone(timezone.utc).timestamp()))


def bit_string(data: bytes) -> bytes:
    """BIT STRING with zero unused bits (a signature value)."""
    return tlv(BIT_STRING, b"\x00" + data)


def read_header(buf, offset: int, partial: bool = False) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``offset``; raises ValueError on bad DER.
    Used to find the TBS bytes and the CRL's times without decoding the entries; ``partial``:
    ``buf`` is only the beginning of the encoding, so the element may run past its end."""
    end_of_buf = len(buf)
    if offset + 2 > end_of_buf:
        raise ValueError(f"truncated DER at offset {offset}")
    tag, first = buf[offset], buf[offset + 1]
    pos = offset + 2
    if first < 0x80:
        n = first
    else:
        count = first & 0x7F
        if count == 0 or count > 8 or pos + count > end_of_buf:
            raise ValueError(f"bad length octets at offset {offset}")
        n = int.from_bytes(bytes(buf[pos:pos + count]), "big")
        pos += count
    if pos + n > end_of_buf and not partial:
        raise ValueError(f"element at offset {offset} runs past the end ({pos + n} > {end_of_buf})")
    return tag, pos, pos + n
