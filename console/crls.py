"""Reading published CRLs for the console: entries of one number, and the difference of two.

Reads the files the publisher wrote (current and archived), parsed with asn1crypto, the
independent parser the tests use too.  Partition and delta CRLs are small; the full CRL of a
seeded national population is not, so entries are shown a page at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from asn1crypto import crl as acrl

from jpki_mock.errors import NotFound
from jpki_mock.vocab import Reason


@dataclass
class Entry:
    serial: int
    revoked_at: datetime
    reason: str | None


def load(path: Path) -> acrl.CertificateList:
    if not path.exists():
        raise NotFound("this CRL has not been published (or was removed)", field="number")
    return acrl.CertificateList.load(path.read_bytes())


def entries(crl: acrl.CertificateList) -> list[Entry]:
    out = []
    for rc in crl["tbs_cert_list"]["revoked_certificates"]:
        # RFC 5280 section 5.3.1's names (affiliationChanged), as the API and docs spell them.
        code = rc.crl_reason_value
        reason = Reason(int.from_bytes(code.contents, "big")).rfc_name if code is not None else None
        out.append(Entry(rc["user_certificate"].native, rc["revocation_date"].native, reason))
    return out


def diff(older: acrl.CertificateList, newer: acrl.CertificateList) -> tuple[list[Entry], list[Entry]]:
    """(added, removed) from ``older`` to ``newer``, by serial."""
    a = {e.serial: e for e in entries(older)}
    b = {e.serial: e for e in entries(newer)}
    return [b[s] for s in sorted(set(b) - set(a))], [a[s] for s in sorted(set(a) - set(b))]
