"""Finding and listing issued certificates (the operator's view; ``ca.status`` is the responders')."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jpki_mock import municipalities
from jpki_mock.ca.generations import Generations
from jpki_mock.ca.inputs import BOTH, MAX_BIGINT, MAX_INT32, generation_of, kinds_of, page, parse_serial, whole_number
from jpki_mock.ca.models import Certificate
from jpki_mock.ca.status import HOLD
from jpki_mock.clock import Clock
from jpki_mock.db import Store
from jpki_mock.errors import InvalidInput, NotFound
from jpki_mock.vocab import CertState

#: the filters ``list_certificates(status=...)`` offers: the stored states, a hold, and expiry
STATUS_FILTERS = [CertState.GOOD, CertState.REVOKED, "hold", "expired"]
MAX_EXPIRY_DAYS = 3650


class Certificates:
    def __init__(self, store: Store, clock: Clock, generations: Generations):
        self.store = store
        self.clock = clock
        self.generations = generations

    def find(self, s: Session, issuer_ref: str, serial: Any) -> Certificate:
        """The certificate ``serial`` of issuer ``sign`` / ``auth`` / ``sign-g2`` in session ``s``."""
        kind, generation = self.generations.parse_issuer_ref(issuer_ref)
        serial = parse_serial(serial)
        if serial > MAX_BIGINT:  # beyond BIGINT: we never issued it
            raise NotFound(f"no {issuer_ref} certificate with serial {serial}", field="serial")
        q = select(Certificate).where(Certificate.kind == kind, Certificate.serial == serial)
        if generation is not None:
            q = q.where(Certificate.ca_id == self.generations.issuer(kind, generation).id)
        cert = s.scalars(q).first()
        if cert is None:
            raise NotFound(f"no {issuer_ref} certificate with serial {serial}", field="serial")
        return cert

    def get_certificate(self, issuer_ref: str, serial: Any) -> Certificate:
        with self.store.session() as s:
            return self.find(s, issuer_ref, serial)

    def list_certificates(self, *, kind: str | None = None, status: str | None = None, municipality: str | None = None,
                          holder: Any = None, generation: int | None = None, expiring_within_days: Any = None,
                          limit: Any = 100, offset: Any = 0) -> list[Certificate]:
        limit, offset = page(limit, offset)
        now = self.clock.now()
        q = select(Certificate).order_by(Certificate.id)
        if kind is not None:
            kinds_of(kind, "kind")
            if kind != BOTH:
                q = q.where(Certificate.kind == kind)
            if generation is not None:
                issuer = self.generations.issuer(kind, generation_of(generation))
                q = q.where(Certificate.ca_id == issuer.id)
        elif generation is not None:
            raise InvalidInput("needs kind", field="generation")
        if status is not None:
            if status not in STATUS_FILTERS:
                raise InvalidInput(f"{status!r} is not a status", field="status", allowed=STATUS_FILTERS)
            if status == CertState.GOOD:
                q = q.where(Certificate.status == CertState.GOOD, Certificate.not_after > now)
            elif status == CertState.REVOKED:
                q = q.where(Certificate.status == CertState.REVOKED)
            elif status == "hold":
                q = q.where(Certificate.status == CertState.REVOKED, Certificate.reason == HOLD)
            else:
                q = q.where(Certificate.not_after <= now)
        if municipality is not None:
            municipality = municipalities.get(municipality).code  # the 6-digit form finds the same rows
            q = q.where(Certificate.municipality == municipality)
        if holder is not None:
            q = q.where(Certificate.holder_id == whole_number(holder, "holder", 1, MAX_INT32))
        if expiring_within_days is not None:
            days = whole_number(expiring_within_days, "expiring_within_days", 0, MAX_EXPIRY_DAYS)
            q = q.where(Certificate.status == CertState.GOOD, Certificate.not_after > now,
                        Certificate.not_after <= now + timedelta(days=days)
                        ).order_by(None).order_by(Certificate.not_after, Certificate.id)
        with self.store.session() as s:
            return list(s.scalars(q.limit(limit).offset(offset)).all())

    def expiring(self, days: Any, limit: Any = 100, offset: Any = 0) -> list[Certificate]:
        """Good certificates whose notAfter falls within ``days`` (J-LIS mails expiry notices)."""
        return self.list_certificates(expiring_within_days=days, limit=limit, offset=offset)

    def count_expiring(self, days: Any) -> int:
        days = whole_number(days, "days", 0, MAX_EXPIRY_DAYS)
        now = self.clock.now()
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(Certificate).where(
                Certificate.status == CertState.GOOD, Certificate.not_after > now,
                Certificate.not_after <= now + timedelta(days=days))) or 0)
