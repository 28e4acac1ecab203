"""SQLAlchemy 2 typed models. ``ca/`` owns the schema; other packages add tables on the same
:class:`Base` in their own ``models`` module (listed in :data:`ca.store.MODEL_MODULES`).

Hot paths: certificate status by (ca_id, serial) is one unique-index read; the revoked set
streams in serial order per CA generation (and per municipality partition) for CRLs.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String,
    TypeDecorator, UniqueConstraint,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .clock import UTC


class _SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME with a one-call bind step.  ``isoformat(" ", "microseconds")`` of a naive
    datetime is exactly the stock storage format 'YYYY-MM-DD HH:MM:SS.ffffff', which the stock
    processor builds from a seven-key dict per value: a measurable share of bulk seeding.  Text
    comparisons in SQL (not_after < :now) depend on every row having that one format."""

    def bind_processor(self, dialect):
        def process(value):
            return None if value is None else value.isoformat(" ", "microseconds")
        return process


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC: SQLite has no time zones, PostgreSQL gets the same values."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteDateTime())
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Counter(Base):
    """Named monotonic counters: certificate serials per CA kind, the revocation sequence."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


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
    kind: Mapped[str] = mapped_column(String(4))  # "sign" | "auth"
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
    state: Mapped[str] = mapped_column(String(10), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    certificates: Mapped[list["Certificate"]] = relationship(back_populates="holder", order_by="Certificate.id")


class Certificate(Base):
    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial", name="uq_cert_issuer_serial"),
        # Covering indexes for CRL building: the streamed columns (revocation date, reason, notAfter
        # for expiry) follow the key, so SQLite reads entries from the index alone.
        Index("ix_cert_crl", "ca_id", "status", "serial", "revoked_at", "reason", "not_after"),
        Index("ix_cert_partition", "ca_id", "municipality", "status", "serial", "revoked_at", "reason", "not_after"),
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
    status: Mapped[str] = mapped_column(String(7), default="good")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    #: value of the global revocation sequence when this row last changed status; responders
    #: use it to invalidate pre-signed responses (``StatusReader.changes_since``).
    status_seq: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)

    holder: Mapped[Holder | None] = relationship(back_populates="certificates")


class ApiToken(Base):
    """Admin API bearer tokens, stored as SHA-256 (shown once at creation)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RelyingParty(Base):
    """A registered verifier (署名検証者 / 利用者証明検証者) allowed to query CRLs and OCSP."""

    __tablename__ = "relying_parties"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: sign | auth | both: which certificate kinds it may query
    kinds: Mapped[str] = mapped_column(String(4))
    credential_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
