"""The responder's own table: lookup counts, as the J-LIS report counts OCSP lookups."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from jpki_mock.db import Base


class OcspLookup(Base):
    """Answers given, per JST day, certificate kind, status and relying party (``-`` without one).

    Each responder process counts in memory and adds its counts here every
    ``ocsp.stats_flush_seconds`` (one upsert per key), so counting costs the hot path a dict
    increment."""

    __tablename__ = "ocsp_lookups"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    relying_party: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
