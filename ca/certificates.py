"""Finding and listing issued certificates (the operator's view; ``ca.status`` is the responders'),
and the one way to read a certificate's DER: :meth:`Certificates.der_of`, which signs a lazily
seeded record (:mod:`ca.bulkseed`) on first use and stores the result."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from asn1crypto import keys as asn1_keys
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from jpki_mock import municipalities
from jpki_mock.ca import fastcert, profile
from jpki_mock.ca.basic4 import Basic4
from jpki_mock.ca.generations import Generations
from jpki_mock.ca.inputs import BOTH, MAX_BIGINT, MAX_INT32, generation_of, kinds_of, page, parse_serial, whole_number
from jpki_mock.ca.models import Certificate, Holder, SeedKey
from jpki_mock.ca.status import HOLD
from jpki_mock.clock import Clock
from jpki_mock.db import Store
from jpki_mock.errors import InvalidInput, NotFound
from jpki_mock.vocab import CertState, Kind

#: the filters ``list_certificates(status=...)`` offers: the stored states, a hold, and expiry
STATUS_FILTERS = [CertState.GOOD, CertState.REVOKED, "hold", "expired"]
MAX_EXPIRY_DAYS = 3650


class Certificates:
    def __init__(self, store: Store, clock: Clock, generations: Generations):
        self.store = store
        self.clock = clock
        self.generations = generations
        self._lock = threading.Lock()
        self._signers: dict[int, fastcert.FastSigner] = {}
        #: (SubjectPublicKeyInfo DER, subjectPublicKey bits) per seed key id; the pool never changes
        self._seed_keys: dict[int, tuple[bytes, bytes]] = {}

    def der_of(self, cert: Certificate, s: Session | None = None) -> bytes:
        """``cert``'s DER.  A lazily seeded record has none until its first use: it is signed here
        from the record alone (serial, subject CN, validity, CA generation, seed key, and the
        holder's basic four for a signature certificate) and stored.  PKCS#1 v1.5 signatures are
        deterministic (RFC 8017 section 8.2), so processes racing on one record sign the same bytes;
        the store keeps the first (``UPDATE ... WHERE der IS NULL``) and every caller returns that.
        ``s``: the caller's open session, when it has one (a second writer would wait on SQLite)."""
        if cert.stored_der is not None:
            return bytes(cert.stored_der)
        if s is None:
            with self.store.session() as own:
                return self.der_of(cert, own)
        der = self._sign_record(s, cert)
        s.execute(update(Certificate).where(Certificate.id == cert.id, Certificate.stored_der.is_(None))
                  .values(stored_der=der).execution_options(synchronize_session=False))
        stored = s.scalar(select(Certificate.stored_der).where(Certificate.id == cert.id))
        assert stored is not None
        # Not a change to flush: the row already holds these bytes.
        set_committed_value(cert, "stored_der", stored)
        return bytes(stored)

    def _sign_record(self, s: Session, cert: Certificate) -> bytes:
        if cert.seed_key is None:
            raise LookupError(f"{cert.kind} certificate {cert.serial} has neither a DER nor a seed key")
        spki, bits = self._seed_key(s, cert.seed_key)
        b4 = None
        if cert.kind == Kind.SIGN:
            holder = s.get(Holder, cert.holder_id)
            assert holder is not None  # a seeded signature certificate always has its holder
            b4 = Basic4(holder.name, holder.date_of_birth, holder.gender, holder.address, holder.name_flags,
                        holder.address_flags, holder.municipality)
        return self._signer(cert.ca_id).certificate(
            kind=cert.kind, municipality=municipalities.get(cert.municipality), serial=cert.serial,
            not_before=cert.not_before, not_after=cert.not_after, cn=cert.subject_cn, spki_der=spki, key_bits=bits,
            basic4=b4)

    def _seed_key(self, s: Session, key_id: int) -> tuple[bytes, bytes]:
        got = self._seed_keys.get(key_id)
        if got is None:
            row = s.get(SeedKey, key_id)
            if row is None:
                raise LookupError(f"no seed key {key_id}")
            spki = bytes(row.spki_der)
            got = self._seed_keys[key_id] = (spki, bytes(asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:]))
        return got

    def _signer(self, ca_id: int) -> fastcert.FastSigner:
        with self._lock:
            signer = self._signers.get(ca_id)
            if signer is None:
                ca = self.generations.keyring.ca_signer(ca_id)
                config = self.generations.config
                # The same encoder bulk seeding used to sign up front: byte-for-byte the builder's output.
                signer = self._signers[ca_id] = fastcert.FastSigner(ca.sign, ca.issuer.info, profile.EEProfile(
                    config.hierarchy, config.faithful, config.public_url))
            return signer

    def materialise_holder(self, s: Session, holder_id: int) -> None:
        """Sign and store a holder's lazily seeded certificates before the holder's basic four
        change: a signature certificate carries the basic four as issued (docs/sources.md
        section 3), not the holder's later ones."""
        for cert in s.scalars(select(Certificate).where(Certificate.holder_id == holder_id,
                                                        Certificate.stored_der.is_(None))).all():
            self.der_of(cert, s)

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
