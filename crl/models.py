"""CRL stream state: one row per published CRL (the archive index).

A *stream* is one CA generation x one scope (``full``, ``arl`` or a municipality code) x
complete/delta.  Complete and delta CRLs of one scope share a single cRLNumber sequence
(RFC 5280 section 5.2.3).  Numbers are handed out by the scope's row in the kernel's
``counters`` table, reserved and committed before a CRL is written (crl.publisher), so a crash
skips a number instead of reusing it; the unique constraint makes a second CRL recorded with
the same number fail instead of serving two CRLs with one number.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jpki_mock.db import Base, UTCDateTime


class PublishedCrl(Base):
    __tablename__ = "crl_published"
    __table_args__ = (
        UniqueConstraint("ca_id", "scope", "number", name="uq_crl_scope_number"),
        Index("ix_crl_stream", "ca_id", "scope", "delta", "number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_generations.id"))
    #: ``full``, ``arl`` or a 5-digit municipality code (:func:`jpki_mock.urls.crl_path`'s partition).
    scope: Mapped[str] = mapped_column(String(8))
    delta: Mapped[bool] = mapped_column(Boolean, default=False)
    number: Mapped[int] = mapped_column(BigInteger)
    #: for a delta CRL: the cRLNumber of the complete CRL it updates (DeltaCRLIndicator).
    base_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the revocation sequence read before the entries were streamed: a delta lists what changed after it.
    revocation_seq: Mapped[int] = mapped_column(BigInteger)
    entries: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
