"""Revoking end-entity certificates: the revocation sequence and its publication.

Each revocation takes the next value of the global revocation sequence (``ca.status``'s
``REVOCATION_SEQ``) into the certificate's ``status_seq``; the unit of work publishes the
highest one on the shared epoch after its commit (:mod:`ca.work`), which is how responders
learn that their cached answers are stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jpki_mock import audit
from jpki_mock.ca.certificates import Certificates
from jpki_mock.ca.inputs import reason_code
from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.ca.serials import REVOCATION_SEQ_START
from jpki_mock.ca.status import HOLD, REASON_NAMES, REVOCATION_SEQ
from jpki_mock.ca.work import Begin, UnitOfWork
from jpki_mock.clock import Clock
from jpki_mock.db import next_values
from jpki_mock.errors import AlreadyRevoked, Conflict, HoldNotReleasable
from jpki_mock.vocab import CertState, Reason


class Revocation:
    def __init__(self, clock: Clock, certificates: Certificates, begin: Begin):
        self.clock = clock
        self.certificates = certificates
        self.begin = begin

    @audit.operation("cert.revoke", "{issuer_ref}/{serial} {reason}")
    def revoke(self, issuer_ref: str, serial: Any, reason: Any = Reason.UNSPECIFIED.rfc_name) -> Certificate:
        code = reason_code(reason)
        with self.begin() as work:
            cert = self.certificates.find(work.session, issuer_ref, serial)
            self.revoke_row(work, cert, code)
        return cert

    def revoke_row(self, work: UnitOfWork, cert: Certificate, code: Reason) -> None:
        """Revoke ``cert`` (a row of ``work``'s session) with ``code`` inside ``work``."""
        if cert.status == CertState.REVOKED:
            if cert.reason == HOLD and code != HOLD:
                pass  # a hold becomes a permanent revocation; the hold is never released [C]
            else:
                # revoke_row sets revoked_at and reason together with the revoked status
                assert cert.reason is not None and cert.revoked_at is not None
                raise AlreadyRevoked(
                    f"{cert.kind} certificate {cert.serial} is already revoked "
                    f"({REASON_NAMES.get(cert.reason, cert.reason)} at {cert.revoked_at.isoformat()})",
                    field="serial",
                )
        seq = next_values(work.session, REVOCATION_SEQ, start=REVOCATION_SEQ_START)
        if cert.status != CertState.REVOKED:
            cert.revoked_at = self.clock.now()
        cert.status = CertState.REVOKED
        cert.reason = code
        cert.status_seq = seq
        work.session.flush()
        work.revoked(seq)

    @staticmethod
    def active(s: Session, holder: Holder, kinds: Iterable[str], *, include_held: bool = False) -> list[Certificate]:
        """The holder's good certificates of ``kinds`` (and held ones with ``include_held``)."""
        q = select(Certificate).where(Certificate.holder_id == holder.id, Certificate.kind.in_(list(kinds)))
        rows = s.scalars(q).all()
        return [c for c in rows if c.status == CertState.GOOD or (include_held and c.reason == HOLD)]

    def revoke_holder(self, work: UnitOfWork, holder: Holder, kinds: Iterable[str], code: Reason, *,
                      state: str | None = None, holder_update: Mapping[str, Any] | None = None,
                      include_held: bool = False) -> list[Certificate]:
        """Revoke a holder's active certificates of ``kinds`` and update the holder, inside ``work``."""
        certs = self.active(work.session, holder, kinds, include_held=include_held)
        for cert in certs:
            self.revoke_row(work, cert, code)
        if holder_update:
            self.certificates.materialise_holder(work.session, holder.id)
        for key, value in (holder_update or {}).items():
            setattr(holder, key, value)
        if state:
            holder.state = state
        holder.updated_at = self.clock.now()
        return certs

    @audit.operation("cert.release", "{issuer_ref}/{serial}")
    def release_hold(self, issuer_ref: str, serial: Any) -> None:
        """Always refused: JPKI never releases a certificateHold (removeFromCRL is not used) [C]."""
        cert = self.certificates.get_certificate(issuer_ref, serial)
        if cert.reason != HOLD:
            raise Conflict(f"{cert.kind} certificate {cert.serial} is not on hold", field="serial")
        raise HoldNotReleasable(
            "a JPKI certificateHold is never released: revoke the held certificate and issue a new one "
            "(jpki-mock card renew for a holder with a card; else the 'renewal' event)", field="serial",
        )
