"""The software card's table, on the shared :class:`jpki_mock.db.Base`.

One row per holder.  Each private key is stored only as an AES-256-GCM blob under a key
derived (scrypt) from the holder's PIN / password *and* the configured key passphrase, so the
database alone opens nothing and a 4-digit PIN cannot be brute-forced offline without the
passphrase.  The remaining-tries counters live here so a restart keeps a locked card locked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from jpki_mock.db import Base, UTCDateTime


class Card(Base):
    __tablename__ = "cards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), unique=True)
    #: encrypted signature key; NULL for a holder under 15 (no signature certificate) [C]
    sign_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    auth_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: the certificates currently on the card (ids in ``certificates``)
    sign_cert_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    auth_cert_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"))
    #: wrong tries left before the PIN locks: 5 for the signature password, 3 for the user-auth PIN [C]
    sign_tries: Mapped[int] = mapped_column(SmallInteger)
    auth_tries: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
