"""The authority's tables: CA generations, delegated responder certificates, holders and their
certificates.  Every part adds its own tables on the kernel's :class:`jpki_mock.db.Base` in its
own ``models`` module; the composition root (:mod:`jpki_mock.runtime`) imports them all.

Hot paths: certificate status by (ca_id, serial) is one unique-index read; the revoked set
streams in serial order per CA generation (and per municipality partition) for CRLs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jpki_mock.db import Base, UTCDateTime
from jpki_mock.vocab import CertState, HolderState

#: the partial indexes' predicates, as SQL text: a query must repeat them literally to use them
REVOKED_SQL = f"status = '{CertState.REVOKED.value}'"
CHANGED_SQL = "status_seq > 0"
#: query conditions that let SQLite and PostgreSQL use the partial indexes (bound parameters would not)
REVOKED_ONLY: ColumnElement[bool] = literal_column(f"certificates.{REVOKED_SQL}", Boolean)
CHANGED_ONLY: ColumnElement[bool] = literal_column(f"certificates.{CHANGED_SQL}", Boolean)


class _KeyedCertificate:
    """A certificate we hold the private key of."""

    serial: Mapped[int] = mapped_column(BigInteger)
    cert_der: Mapped[bytes] = mapped_column(LargeBinary)
    #: PKCS#8, encrypted with the configured passphrase (never stored or logged in clear).
    key_pkcs8: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CAGeneration(_KeyedCertificate, Base):
    """One key generation of one CA (JPKI renews root keys every ~4 years under the same DN)."""

    __tablename__ = "ca_generations"
    __table_args__ = (UniqueConstraint("kind", "generation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(4))  # a vocab.Kind
    generation: Mapped[int] = mapped_column(Integer)
    hierarchy: Mapped[str] = mapped_column(String(16))
    #: a revoked CA certificate appears on the ARL (the roots' CRLDP names it).
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)

    @property
    def label(self) -> str:
        return f"{self.kind}-g{self.generation}"


class ResponderCert(_KeyedCertificate, Base):
    """A delegated OCSP responder certificate (RFC 6960 section 4.2.2.2) for one CA generation."""

    __tablename__ = "responder_certs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_generations.id"), index=True)


class Holder(Base):
    """A card holder: the basic four items plus the card's own state."""

    __tablename__ = "holders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    date_of_birth: Mapped[str] = mapped_column(String(9))
    gender: Mapped[str] = mapped_column(String(1))
    address: Mapped[str] = mapped_column(String(200))
    name_flags: Mapped[str] = mapped_column(String(100))
    address_flags: Mapped[str] = mapped_column(String(200))
    municipality: Mapped[str] = mapped_column(String(5), index=True)
    card_expiry: Mapped[date] = mapped_column(Date)
    #: active | deceased | returned | lost
    state: Mapped[str] = mapped_column(String(10), default=HolderState.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    certificates: Mapped[list[Certificate]] = relationship(back_populates="holder", order_by="Certificate.id")


class Certificate(Base):
    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial", name="uq_cert_issuer_serial"),
        # Covering indexes for CRL building: the streamed columns (revocation date, reason, notAfter
        # for expiry) follow the key, so SQLite reads entries from the index alone.  Partial: only
        # revoked rows (a few per cent of a national population), so a 10 M-record store builds and
        # keeps them at a tenth of the size.  A query uses them only when it names the predicate
        # literally (SQLite cannot prove ``status = ?`` implies it): :data:`REVOKED_ONLY`.
        # ``status`` stays a key column although the predicate fixes it: with it the query's
        # equalities cover more of this index than of the (ca_id, serial) one, which SQLite's
        # planner (no statistics) would pick otherwise and walk every certificate of the CA
        # (tests/ca/test_status_indexes.py).
        Index("ix_cert_crl", "ca_id", "status", "serial", "revoked_at", "reason", "not_after",
              sqlite_where=text(REVOKED_SQL), postgresql_where=text(REVOKED_SQL)),
        Index("ix_cert_partition", "ca_id", "municipality", "status", "serial", "revoked_at", "reason", "not_after",
              sqlite_where=text(REVOKED_SQL), postgresql_where=text(REVOKED_SQL)),
        # Responders poll the rows whose status changed (StatusReader.changes_since); a row never
        # revoked keeps status_seq 0 and is not in this index.
        Index("ix_cert_status_seq", "status_seq",
              sqlite_where=text(CHANGED_SQL), postgresql_where=text(CHANGED_SQL)),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_generations.id"))
    kind: Mapped[str] = mapped_column(String(4))
    serial: Mapped[int] = mapped_column(BigInteger)
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("holders.id"), nullable=True, index=True)
    municipality: Mapped[str] = mapped_column(String(5))
    subject_cn: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: good | revoked  (a hold is "revoked" with reason certificateHold, RFC 5280 section 5.3.1)
    status: Mapped[str] = mapped_column(String(7), default=CertState.GOOD)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    #: value of the global revocation sequence when this row last changed status; responders
    #: use it to invalidate pre-signed responses (``StatusReader.changes_since``).
    status_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the certificate's DER, or NULL for a lazily seeded record (``jpki-mock seed --lazy``) not
    #: used yet: read it through :meth:`ca.certificates.Certificates.der_of`, which signs and stores
    #: it on first use; :attr:`der` refuses a record that has none.
    stored_der: Mapped[bytes | None] = mapped_column("der", LargeBinary, nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the :class:`SeedKey` whose public key a lazily seeded record certifies (NULL otherwise)
    seed_key: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)

    holder: Mapped[Holder | None] = relationship(back_populates="certificates")

    @property
    def der(self) -> bytes:
        """The stored DER; a lazily seeded record not signed yet raises (no caller gets None)."""
        if self.stored_der is None:
            raise LookupError(f"{self.kind} certificate {self.serial} is a lazily seeded record not signed yet: "
                              "read it through Certificates.der_of")
        return self.stored_der


class SeedKey(Base):
    """A subject public key of the lazy seeding pool: the records that name it certify this key, so
    the certificate signed on first use is the same whichever process signs it."""

    __tablename__ = "seed_keys"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    spki_der: Mapped[bytes] = mapped_column(LargeBinary)


class Partition(Base):
    """A (CA generation, municipality) pair some certificate names: the CRL partitions in use.

    Kept beside the certificates (every insert of a certificate row adds its pair: :func:`note_partitions`)
    because finding them in a 10 M-record table would need a full index of every row by municipality
    or a scan, where the revoked-only partition index holds just the revoked ones."""

    __tablename__ = "cert_partitions"

    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_generations.id"), primary_key=True)
    municipality: Mapped[str] = mapped_column(String(5), primary_key=True)


#: insert-if-absent in the syntax SQLite (3.24+) and PostgreSQL share
NOTE_PARTITION_SQL = ("INSERT INTO cert_partitions (ca_id, municipality) VALUES (:ca_id, :municipality) "
                      "ON CONFLICT DO NOTHING")


def note_partitions(conn: Connection, pairs: Iterable[tuple[int, str]]) -> None:
    """Record the partitions of certificate rows inserted in ``conn``'s transaction."""
    rows = [{"ca_id": c, "municipality": m} for c, m in sorted(set(pairs))]
    if rows:
        conn.execute(text(NOTE_PARTITION_SQL), rows)
