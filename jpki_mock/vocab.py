"""One vocabulary: the enums every part speaks (certificate kinds, revocation reasons,
certificate and holder states, resident-registry events).

Adding a mapping of a revocation reason (another library's name for it) touches this module
only.  The enums are ``str``/``int`` enums, so their members compare equal to the plain values
the database, the JSON API and the command line carry.
"""

from __future__ import annotations

import enum

from cryptography import x509


class Kind(enum.StrEnum):
    """The two JPKI certificate kinds, one CA each (docs/sources.md section 1)."""

    SIGN = "sign"  #: 署名用電子証明書: carries the holder's basic four
    AUTH = "auth"  #: 利用者証明用電子証明書: no personal data

    @property
    def japanese(self) -> str:
        return "署名用電子証明書" if self is Kind.SIGN else "利用者証明用電子証明書"


#: the kinds in their canonical order (signature first, as J-LIS lists them)
KINDS: tuple[Kind, ...] = (Kind.SIGN, Kind.AUTH)


class Reason(enum.IntEnum):
    """CRLReason (RFC 5280 section 5.3.1): the subset JPKI uses (docs/sources.md section 4).

    ``removeFromCRL`` (8) is absent on purpose: a JPKI hold is never released."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3  #: a basic-four change (move, marriage): signature certificates only
    SUPERSEDED = 4  #: renewal
    CESSATION_OF_OPERATION = 5  #: no longer needed: death, card returned, the holder's request
    CERTIFICATE_HOLD = 6  #: a lost card reported to the 24-hour hotline

    @property
    def rfc_name(self) -> str:
        """The ASN.1 name RFC 5280 gives it, as the API, the CLI and asn1crypto spell it."""
        return _RFC_NAMES[self]

    @property
    def openssl_name(self) -> str:
        """The name ``openssl ca``'s index file and ``openssl ocsp`` print."""
        return _OPENSSL_NAMES.get(self, _RFC_NAMES[self])

    @property
    def x509_flag(self) -> x509.ReasonFlags:
        """pyca/cryptography's name for it."""
        return _X509_FLAGS[self]

    @classmethod
    def from_name(cls, name: str) -> Reason:
        """By RFC name (``keyCompromise``); KeyError for anything else."""
        return _BY_RFC_NAME[name]


_RFC_NAMES = {
    Reason.UNSPECIFIED: "unspecified",
    Reason.KEY_COMPROMISE: "keyCompromise",
    Reason.CA_COMPROMISE: "cACompromise",
    Reason.AFFILIATION_CHANGED: "affiliationChanged",
    Reason.SUPERSEDED: "superseded",
    Reason.CESSATION_OF_OPERATION: "cessationOfOperation",
    Reason.CERTIFICATE_HOLD: "certificateHold",
}
_OPENSSL_NAMES = {Reason.CA_COMPROMISE: "CACompromise"}
_X509_FLAGS = {
    Reason.UNSPECIFIED: x509.ReasonFlags.unspecified,
    Reason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    Reason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    Reason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    Reason.SUPERSEDED: x509.ReasonFlags.superseded,
    Reason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    Reason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
}
_BY_RFC_NAME = {name: reason for reason, name in _RFC_NAMES.items()}

#: RFC name -> code, and back: the shape the JSON API and the store use
REASONS: dict[str, int] = {r.rfc_name: int(r) for r in Reason}
REASON_NAMES: dict[int, str] = {int(r): r.rfc_name for r in Reason}


class CertState(enum.StrEnum):
    """A certificate's revocation status as the store keeps it (expiry is computed, not stored)."""

    GOOD = "good"
    REVOKED = "revoked"


class HolderState(enum.StrEnum):
    ACTIVE = "active"
    DECEASED = "deceased"
    RETURNED = "returned"
    LOST = "lost"


class HolderEvent(enum.StrEnum):
    """Resident-registry and card events (異動等情報) and the revocations they cause
    (docs/lifecycle.md)."""

    CHANGE = "change"  #: a basic-four item changed: the signature certificate is revoked
    DEATH = "death"
    CARD_RETURN = "card_return"
    RENEWAL = "renewal"
    LOSS = "loss"
    REQUEST = "request"
