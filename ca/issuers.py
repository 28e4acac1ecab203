"""One :class:`Issuer` per CA generation, with the precomputed hashes OCSP matching needs.

All generations of a kind share one DN, so a CertID's issuerNameHash alone cannot tell
them apart: RFC 6960 section 4.1.1 pairs it with issuerKeyHash, the hash of the issuer's
subjectPublicKey BIT STRING value (without tag, length and unused-bits octet).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from asn1crypto import x509 as asn1_x509
from cryptography import x509

from jpki_mock.ca.profile import IssuerInfo
from jpki_mock.errors import InvalidInput, UnknownIssuer
from jpki_mock.vocab import KINDS, Kind

HASH_ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")


def key_bits(cert_der: bytes) -> bytes:
    """The subjectPublicKey BIT STRING's bits (for RSA: the RSAPublicKey DER)."""
    spki = asn1_x509.Certificate.load(cert_der)["tbs_certificate"]["subject_public_key_info"]
    return bytes(spki["public_key"].contents[1:])


def name_der(cert_der: bytes) -> bytes:
    encoded: bytes = asn1_x509.Certificate.load(cert_der)["tbs_certificate"]["subject"].dump()  # asn1crypto: untyped
    return encoded


class IssuerRow(Protocol):
    """What :meth:`Issuer.from_row` reads: a ``ca.models.CAGeneration`` row, or a
    ``ca.signer.SealedSigner`` (same names, read-only)."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def generation(self) -> int: ...
    @property
    def hierarchy(self) -> str: ...
    @property
    def cert_der(self) -> bytes: ...
    @property
    def not_before(self) -> datetime: ...
    @property
    def not_after(self) -> datetime: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def reason(self) -> int | None: ...


@dataclass(frozen=True)
class Issuer:
    id: int
    kind: str
    generation: int
    hierarchy: str
    der: bytes
    certificate: x509.Certificate = field(repr=False, compare=False)
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    reason: int | None = None
    name_der: bytes = field(default=b"", repr=False)
    key_bits: bytes = field(default=b"", repr=False)
    name_hash: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    key_hash: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.kind}-g{self.generation}"

    @property
    def ski(self) -> bytes:
        return self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    @property
    def info(self) -> IssuerInfo:
        return IssuerInfo(kind=self.kind, generation=self.generation, name=self.certificate.subject, ski=self.ski)

    @property
    def pem(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.certificate.public_bytes(Encoding.PEM).decode()

    @classmethod
    def from_row(cls, row: IssuerRow) -> Issuer:
        der = bytes(row.cert_der)
        nd, kb = name_der(der), key_bits(der)
        return cls(
            id=row.id, kind=row.kind, generation=row.generation, hierarchy=row.hierarchy, der=der,
            certificate=x509.load_der_x509_certificate(der), not_before=row.not_before, not_after=row.not_after,
            revoked_at=row.revoked_at, reason=row.reason, name_der=nd, key_bits=kb,
            name_hash={alg: hashlib.new(alg, nd).digest() for alg in HASH_ALGORITHMS},
            key_hash={alg: hashlib.new(alg, kb).digest() for alg in HASH_ALGORITHMS},
        )


#: how an issuer is named on the command line and in the API
ISSUER_REFS = [*KINDS, "sign-g1", "auth-g2", "..."]
#: a generation in an issuer reference: ASCII digits, within the Integer column
_GENERATION = re.compile(r"[0-9]{1,9}")


def choose(issuers: list[Issuer], kind: Kind, generation: int | None = None) -> Issuer:
    """Among ``issuers`` (every generation, any kind): the named generation of ``kind``, or its
    current one (the highest unrevoked) when ``generation`` is None."""
    candidates = [i for i in issuers if i.kind == kind]
    if generation is None:
        live = [i for i in candidates if i.revoked_at is None]
        if not live:
            raise UnknownIssuer(f"no usable {kind} CA generation", field="kind")
        return max(live, key=lambda i: i.generation)
    for i in candidates:
        if i.generation == generation:
            return i
    raise UnknownIssuer(f"no {kind} CA generation {generation}", field="generation",
                        allowed=[i.generation for i in candidates])


def parse_ref(ref: object) -> tuple[Kind, int | None]:
    """``sign`` / ``auth`` (any generation) or ``sign-g2`` (that generation); syntax only."""
    if not isinstance(ref, str):
        raise InvalidInput("must be a string", field="issuer", allowed=ISSUER_REFS)
    kind, sep, gen = ref.partition("-g")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if kind not in KINDS or (sep and not _GENERATION.fullmatch(gen)):
        raise InvalidInput(f"{ref!r} is not an issuer", field="issuer", allowed=ISSUER_REFS)
    return Kind(kind), int(gen) if gen else None
