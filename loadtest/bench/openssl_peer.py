"""`openssl ocsp` as the benchmark's peer: its index file, its command line, stopping it.

``openssl ocsp -index`` answers from the text database ``openssl ca`` keeps (``index.txt``),
one certificate per line, six tab-separated fields:

    V|R   expiry   revocation[,reason[,arg]]   serial(hex)   file   subject

(OpenSSL apps/ca.c; the revocation field is empty for ``V``).  :func:`build_index` writes
that file from the mock's store so both responders answer for the same serials with the
same statuses.  See docs/sources.md section 7 (`openssl ocsp` as a peer) for why it runs
in a private network namespace, with ``-ignore_err``, and is stopped children first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jpki_mock.vocab import Reason

#: openssl insists on a hold instruction after certificateHold (RFC 5280 section 5.3.2 deprecates
#: the extension; JPKI gives none): "none" is the neutral one.
HOLD_INSTRUCTION = "holdInstructionNone"


@dataclass(frozen=True)
class IndexRow:
    serial: int
    not_after: datetime
    status: str  # "good" | "revoked"
    revoked_at: datetime | None = None
    reason: int | None = None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _index_time(value: datetime) -> str:
    """UTCTime text as openssl ca writes it (RFC 5280 section 4.1.2.5.1: years before 2050);
    GeneralizedTime from 2050 on."""
    value = _utc(value)
    return value.strftime("%y%m%d%H%M%SZ") if value.year < 2050 else value.strftime("%Y%m%d%H%M%SZ")


def serial_hex(serial: int) -> str:
    """The serial as openssl looks it up: BN_bn2hex, upper case, whole octets, "00" for zero."""
    if serial < 0:
        raise ValueError(f"serial {serial} is negative: not representable in openssl's index")
    text = f"{serial:X}"
    return text.zfill(len(text) + len(text) % 2)


def index_line(row: IndexRow) -> str:
    if row.status == "good":
        kind, revocation = "V", ""
    elif row.status == "revoked":
        if row.revoked_at is None:
            raise ValueError(f"serial {row.serial}: a revoked row needs its revocation time")
        if _utc(row.revoked_at).year >= 2050:
            raise ValueError(f"serial {row.serial}: openssl reads revocation times as UTCTime (before 2050)")
        kind, revocation = "R", _utc(row.revoked_at).strftime("%y%m%d%H%M%SZ")
        if row.reason is not None:
            try:
                reason = Reason(row.reason)
            except ValueError:
                raise ValueError(f"serial {row.serial}: reason {row.reason} has no openssl name "
                                 f"(allowed: {sorted(int(r) for r in Reason)})") from None
            # openssl's spelling of the CRLReason names (apps/ca.c crl_reasons), e.g. CACompromise.
            revocation += "," + reason.openssl_name
            if reason == Reason.CERTIFICATE_HOLD:
                revocation += "," + HOLD_INSTRUCTION
    else:
        raise ValueError(f"serial {row.serial}: status {row.status!r} is not good or revoked")
    # A unique subject per line: openssl's index insists on unique subjects unless told otherwise.
    return "\t".join([kind, _index_time(row.not_after), revocation, serial_hex(row.serial), "unknown",
                      f"/CN=serial {row.serial}"])


def build_index(rows: Iterable[IndexRow]) -> str:
    """The whole ``index.txt``; expired certificates stay ``V`` as with ``openssl ca`` before -updatedb."""
    return "".join(index_line(r) + "\n" for r in rows)


def write_index(path: Path, rows: Iterable[IndexRow]) -> Path:
    path.write_text(build_index(rows))
    # The attribute file beside it; without it openssl assumes unique_subject = yes.
    Path(str(path) + ".attr").write_text("unique_subject = no\n")
    return path


def command(*, openssl: str, port: int, index: Path, ca: Path, rsigner: Path, rkey: Path, multi: int = 2,
            validity_minutes: int = 60) -> list[str]:
    """``openssl ocsp`` as a responder: -multi children, -ignore_err so a bad request does not end
    it, nextUpdate like the mock's default, ResponderID byKey like the mock's."""
    return [openssl, "ocsp", "-index", str(index), "-port", str(port), "-CA", str(ca), "-rsigner", str(rsigner),
            "-rkey", str(rkey), "-multi", str(multi), "-ignore_err", "-nmin", str(validity_minutes), "-resp_key_id"]
