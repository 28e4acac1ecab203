"""The streaming CRL writer: revoked entries straight from the store into a signed DER file.

Memory does not grow with the number of entries: entries are encoded into a 1 MiB buffer
and spilled to a temporary file; once their total length is known the TBSCertList header can
be written (DER needs lengths up front), the spilled entries are copied behind it while
SHA-256 runs over the TBS, and the digest is signed once with the CA key
(:meth:`ca.signer.CASigner.sign_prehashed`).  Peak memory is the buffer, not the CRL.

CertificateList layout (RFC 5280 section 5.1)::

    SEQUENCE {                                  outer
      SEQUENCE {                                tbsCertList
        INTEGER 1                               version v2
        AlgorithmIdentifier                     sha256WithRSAEncryption
        Name                                    issuer (the CA generation's DN, byte for byte)
        Time thisUpdate, Time nextUpdate
        SEQUENCE OF SEQUENCE {serial, date, extensions}   revokedCertificates (absent when empty)
        [0] EXPLICIT Extensions                 crlExtensions
      }
      AlgorithmIdentifier, BIT STRING signature
    }
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from jpki_mock import der
from jpki_mock.crl.extensions import ENTRY_EXTENSIONS

_FLUSH_AT = 1 << 20
_COPY_CHUNK = 1 << 20
_VERSION_V2 = der.integer(1)
_HHMM = [b"%02d%02d" % divmod(m, 60) for m in range(1440)]
_SSZ = [b"%02dZ" % s for s in range(60)]


class PrehashSigner(Protocol):
    algorithm_der: bytes

    def sign_prehashed(self, sha256_digest: bytes) -> bytes: ...


@dataclass(frozen=True)
class CrlHeader:
    """What a CRL says besides its entries.

    Without ``issued_at``, ``this_update`` is written as given.  With it, ``this_update`` is the
    backdated issue time and the written thisUpdate is ``min(issued_at, max(this_update, latest
    revocationDate among the entries))``: see :func:`backdated_this_update`."""

    issuer_name_der: bytes
    this_update: datetime
    next_update: datetime
    extensions_der: bytes  # the Extensions SEQUENCE, see crl.extensions.crl_extensions
    issued_at: datetime | None = None


@dataclass(frozen=True)
class Written:
    path: Path
    entries: int
    size: int
    sha256: str
    #: the thisUpdate written into the CRL.
    this_update: datetime


def backdated_this_update(backdated: datetime, issued_at: datetime, latest_revocation: int | None) -> datetime:
    """thisUpdate of a CRL issued at ``issued_at`` whose backdating policy asks for ``backdated``.

    Backdating lets a verifier whose clock runs a little behind accept a fresh CRL (the same
    policy as OCSP's thisUpdate, ``ocsp.backdate_seconds``).  But thisUpdate is the date the
    list was issued (RFC 5280 section 5.1.2.4) and each entry's revocationDate is when that
    revocation happened (section 5.1.2.6): a list cannot claim to be issued before a revocation
    it lists, or a verifier comparing a signature time between the two would see a
    "revoked after this CRL" entry on it.  So thisUpdate is raised to the latest revocationDate
    among the entries, which still lies in the past and so keeps as much backdating as possible.
    It never goes past the issue time: a revocation recorded at a travelled-forward clock
    (docs/time-travel.md) must not make a CRL valid only in the future."""
    if latest_revocation is not None:
        backdated = max(backdated, datetime.fromtimestamp(latest_revocation, UTC))
    return min(backdated, issued_at)


def crl_time(when: datetime) -> bytes:
    """thisUpdate / nextUpdate (RFC 5280 sections 5.1.2.4-5): the kernel's X.509 Time of ``when``
    in UTC.  A naive datetime is refused: its zone would be a guess."""
    if when.tzinfo is None:
        raise ValueError("CRL times must be timezone-aware UTC datetimes")
    return der.x509_time(when.astimezone(UTC))


def encode_entries(rows: Iterable[tuple[int, int, int]], out: BinaryIO,
                   flush_at: int = _FLUSH_AT) -> tuple[int, int, int | None]:
    """Encode ``(serial, revoked_at epoch seconds, reason)`` rows as RevokedCertificate SEQUENCEs
    into ``out``; returns (count, bytes written, latest revocation epoch or None).  The hot loop
    of a large CRL: times are assembled from cached day / minute / second pieces (``time.gmtime``
    per entry costs 3x more)."""
    buf = bytearray()
    count = total = 0
    exts = ENTRY_EXTENSIONS
    days: dict[int, bytes] = {}
    last_epoch, when, latest = None, b"", None
    for serial, epoch, reason in rows:
        if epoch != last_epoch:  # holder events revoke several certificates in the same second
            last_epoch = epoch
            if latest is None or epoch > latest:
                latest = epoch
            day, second = divmod(epoch, 86400)
            prefix = days.get(day)
            if prefix is None:  # tag, length and YYMMDD (or YYYYMMDD) of that day: drop "hhmmssZ"
                prefix = days[day] = der.x509_time(datetime.fromtimestamp(day * 86400, UTC))[:-7]
            minute, second = divmod(second, 60)
            when = prefix + _HHMM[minute] + _SSZ[second]
        body = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
        ext = exts[reason]
        n = 2 + len(body) + len(when) + len(ext)
        if n < 0x80:  # always, for serials of up to 20 octets (RFC 5280 section 4.1.2.2)
            buf += b"\x30%c\x02%c%b%b%b" % (n, len(body), body, when, ext)
        else:
            buf += der.header(der.SEQUENCE, n) + der.integer(serial) + when + ext
        count += 1
        if len(buf) >= flush_at:
            out.write(buf)
            total += len(buf)
            buf.clear()
    out.write(buf)
    total += len(buf)
    return count, total, latest


def signature_length(public_key_bits: int) -> int:
    return (public_key_bits + 7) // 8


def write_crl(path: Path, head: CrlHeader, rows: Iterable[tuple[int, int, int]], signer: PrehashSigner,
              key_bits: int) -> Written:
    """Write a signed CRL to ``path`` (a new file; the publisher renames it into place)."""
    path = Path(path)
    with tempfile.TemporaryFile(dir=path.parent, prefix=".entries-") as spill:
        # The entries go first (into the spill file): DER puts thisUpdate before them, but with
        # backdating its value depends on their latest revocationDate.
        count, entries_len, latest = encode_entries(rows, spill)
        spill.seek(0)
        this_update = head.this_update
        if head.issued_at is not None:
            this_update = backdated_this_update(head.this_update, head.issued_at, latest)
        pre = (_VERSION_V2 + signer.algorithm_der + head.issuer_name_der
               + crl_time(this_update) + crl_time(head.next_update))
        # RFC 5280 section 5.1.2.6: with no revoked certificates the list MUST be absent, not empty.
        revoked_header = der.header(der.SEQUENCE, entries_len) if count else b""
        ext_part = der.tlv(der.CONTEXT_0, head.extensions_der)
        tbs_len = len(pre) + len(revoked_header) + entries_len + len(ext_part)
        tbs_head = der.header(der.SEQUENCE, tbs_len) + pre + revoked_header
        sig_len = signature_length(key_bits)
        sig_part_len = len(signer.algorithm_der) + len(der.header(der.BIT_STRING, sig_len + 1)) + sig_len + 1
        outer_head = der.header(der.SEQUENCE, len(der.header(der.SEQUENCE, tbs_len)) + tbs_len + sig_part_len)

        tbs_hash = hashlib.sha256(tbs_head)
        file_hash = hashlib.sha256()
        size = 0
        with open(path, "xb") as out:
            def emit(data: bytes) -> None:
                nonlocal size
                out.write(data)
                file_hash.update(data)
                size += len(data)

            emit(outer_head + tbs_head)
            while chunk := spill.read(_COPY_CHUNK):
                tbs_hash.update(chunk)
                emit(chunk)
            tbs_hash.update(ext_part)
            emit(ext_part)
            signature = signer.sign_prehashed(tbs_hash.digest())
            if len(signature) != sig_len:
                raise ValueError(f"signature is {len(signature)} bytes, expected {sig_len}")
            emit(signer.algorithm_der + der.bit_string(signature))
            out.flush()
            os.fsync(out.fileno())
    return Written(path=path, entries=count, size=size, sha256=file_hash.hexdigest(), this_update=this_update)
