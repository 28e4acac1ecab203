"""Issuing end-entity certificates: eligibility, validity, subject keys, building and storing.

Issuing is split in two so that an operation can issue inside a larger unit of work (a renewal
revokes and issues in one transaction; the kit's card writes its card row in the same one):
:meth:`Issuance.plan` checks everything and generates keys without writing, and
:meth:`Issuance.stage` writes the certificates in the unit's session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy.orm import Session

from jpki_mock import audit, municipalities, names
from jpki_mock.ca import basic4 as b4
from jpki_mock.ca import keys, profile
from jpki_mock.ca.generations import Generations
from jpki_mock.ca.holders import Holders, holder_id_of
from jpki_mock.ca.inputs import kinds_of
from jpki_mock.ca.issuers import Issuer
from jpki_mock.ca.models import Certificate, Holder, note_partitions
from jpki_mock.ca.revocation import Revocation
from jpki_mock.ca.serials import SERIAL_START, SERIALS
from jpki_mock.ca.signer import Keyring
from jpki_mock.ca.work import Begin, UnitOfWork
from jpki_mock.clock import JST, Clock
from jpki_mock.config import Config
from jpki_mock.db import next_values
from jpki_mock.errors import Conflict, InvalidInput, NotEligible
from jpki_mock.vocab import CertState, HolderState, Kind, Reason

MIN_SIGN_AGE = 15  # no signature certificate for under-15s [C]
CERT_YEARS = 5  # valid until the 5th birthday after issuance [C]

#: Who else holds a holder's private keys: given the unit's session and a holder id, a sentence
#: saying how that holder's certificates are issued instead (the kit's software card: onto the
#: card), or None.  The composition root plugs it in, so the CA never imports the kit; issuing
#: keys generated here, or renewing them, for such a holder would leave the card holding
#: certificates that are no longer the holder's.
KeyCustody = Callable[[Session, int], "str | None"]


#: what an issuance (and a renewal) accepts besides ``kinds``: caller keys, or a passphrase for
#: keys generated here
ISSUE_FIELDS = ("public_key", "csr", "sign_public_key", "auth_public_key", "sign_csr", "auth_csr", "pkcs12_passphrase")


def der_to_pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Issued:
    certificate: Certificate
    issuer: Issuer
    pkcs12: bytes | None = None


@dataclass
class Plan:
    """Everything an issuance writes, decided and checked before the first write."""

    holder: Holder
    kinds: list[Kind]
    #: per kind: the subject public key, and the private key when we generated it (for PKCS#12)
    subject_keys: dict[Kind, tuple[rsa.RSAPublicKey, rsa.RSAPrivateKey | None]]
    validity: dict[Kind, tuple[datetime, datetime]]
    issuers: dict[Kind, Issuer]
    now: datetime
    pkcs12_passphrase: str | None = field(default=None, repr=False)


class Issuance:
    def __init__(self, config: Config, clock: Clock, keyring: Keyring, generations: Generations,
                 holders: Holders, revocation: Revocation, begin: Begin, custody: KeyCustody | None = None):
        self.config = config
        self.custody = custody
        self.clock = clock
        self.keyring = keyring
        self.generations = generations
        self.holders = holders
        self.revocation = revocation
        self.begin = begin

    @property
    def ee_profile(self) -> profile.EEProfile:
        return profile.EEProfile(self.config.hierarchy, self.config.faithful, self.config.public_url)

    def validity_for(self, holder: Holder, kind: Kind, now: datetime) -> tuple[datetime, datetime]:
        today = now.astimezone(JST).date()
        birth = b4.decode_dob(holder.date_of_birth)
        if kind == Kind.SIGN and b4.age_on(birth, today) < MIN_SIGN_AGE:
            raise NotEligible(
                f"holder {holder.id} is {b4.age_on(birth, today)}; "
                f"JPKI issues no signature certificate under {MIN_SIGN_AGE}",
                field="kinds", allowed=[Kind.AUTH],
            )
        end = min(b4.nth_birthday_after(birth, today, CERT_YEARS), holder.card_expiry)
        not_after = profile.jst_end_of_day(end)
        if not_after <= now:
            raise Conflict(f"holder {holder.id}'s card expired on {holder.card_expiry}", field="card_expiry")
        return now, not_after

    @staticmethod
    def subject_keys(kinds: list[Kind], spec: Mapping[str, Any]) -> dict[Kind, tuple[rsa.RSAPublicKey | None, None]]:
        """Per kind: the caller's public key / CSR, or None where we generate one (returned as PKCS#12)."""
        out: dict[Kind, tuple[rsa.RSAPublicKey | None, None]] = {}
        for kind in kinds:
            pub_field, csr_field = f"{kind}_public_key", f"{kind}_csr"
            pub = spec.get(pub_field, spec.get("public_key"))
            csr = spec.get(csr_field, spec.get("csr"))
            if pub is not None and csr is not None:
                raise InvalidInput("give a public key or a CSR, not both", field=csr_field)
            if pub is not None:
                out[kind] = (keys.load_public_key(pub, pub_field if pub_field in spec else "public_key"), None)
            elif csr is not None:
                out[kind] = (keys.load_csr(csr, csr_field if csr_field in spec else "csr"), None)
            else:
                if not spec.get("pkcs12_passphrase"):
                    raise InvalidInput(
                        "needed to protect the generated key: give pkcs12_passphrase, or supply "
                        f"{pub_field} / {csr_field}", field="pkcs12_passphrase",
                    )
                out[kind] = (None, None)  # generated after all checks pass
        return out

    def plan(self, holder: Holder, subject_keys: Mapping[Kind, tuple[rsa.RSAPublicKey | None, None]], *,
             pkcs12_passphrase: str | None = None, replace: bool = False, generation: int | None = None,
             states: Iterable[str] = (HolderState.ACTIVE,)) -> Plan:
        """Check an issuance to ``holder`` completely and generate the keys it lacks (None in
        ``subject_keys``, from :meth:`subject_keys`); nothing is written.

        ``replace``: the holder's valid certificates of these kinds are being replaced (renewal,
        card reset), so they do not block it.  ``generation`` (scenario catalog only, never
        reachable from the API or CLI) issues from an older CA generation.  ``states``: the
        holder states that allow it (a renewal also brings a lost card back)."""
        kinds = list(subject_keys)
        if holder.state not in tuple(states):
            raise Conflict(f"holder {holder.id}'s card is {holder.state}", field="holder")
        now = self.clock.now()
        if not replace:
            for c in holder.certificates:
                if c.kind in kinds and c.status == CertState.GOOD and c.not_after > now:
                    raise Conflict(
                        f"holder {holder.id} already has a valid {c.kind} certificate (serial {c.serial}); "
                        "use the renewal event to replace it", field="kinds",
                    )
        validity = {k: self.validity_for(holder, k, now) for k in kinds}
        issuers = {k: self.generations.issuer(k, generation) for k in kinds}
        ready: dict[Kind, tuple[rsa.RSAPublicKey, rsa.RSAPrivateKey | None]] = {}
        for kind, (pub, _) in subject_keys.items():
            if pub is None:
                priv = keys.generate_rsa()
                ready[kind] = (priv.public_key(), priv)
            else:
                ready[kind] = (pub, None)
        return Plan(holder, kinds, ready, validity, issuers, now, pkcs12_passphrase)

    def check_custody(self, work: UnitOfWork, holder_id: int) -> None:
        """Refuse to issue keys made outside the holder's card to a holder who has one."""
        elsewhere = self.custody(work.session, holder_id) if self.custody is not None else None
        if elsewhere is not None:
            raise Conflict(f"holder {holder_id}'s keys are on a card: {elsewhere}", field="holder",
                           allowed=elsewhere)

    def supersede(self, work: UnitOfWork, holder: Holder, kinds: Iterable[str]) -> list[Certificate]:
        """Revoke as superseded every certificate of ``kinds`` the holder can still use or has on hold
        (within its validity), inside ``work``: what a new certificate of the same kind replaces."""
        now = self.clock.now()
        replaced = [c for c in self.revocation.active(work.session, holder, kinds, include_held=True)
                    if c.not_after > now]
        for cert in replaced:
            self.revocation.revoke_row(work, cert, Reason.SUPERSEDED)
        return replaced

    def stage(self, work: UnitOfWork, plan: Plan) -> list[Issued]:
        """Write the planned certificates in ``work``'s transaction.

        The one place every new end-entity certificate passes: with the holder's row locked it
        checks that no valid certificate of a planned kind remains, so a holder (one card) never
        has two valid certificates of one kind [C: a card holds one of each, docs/sources.md
        section 5], however operations interleave."""
        locked = Holders.load(work.session, plan.holder.id, lock=True)
        now = self.clock.now()
        for c in self.revocation.active(work.session, locked, plan.kinds):
            if c.not_after > now:
                raise Conflict(
                    f"holder {locked.id} already has a valid {c.kind} certificate (serial {c.serial}); "
                    "use the renewal event to replace it", field="kinds",
                )
        issued = []
        for kind in plan.kinds:
            pub, priv = plan.subject_keys[kind]
            issuer = plan.issuers[kind]
            row = self._build_and_add(work.session, plan.holder, kind, issuer, pub, *plan.validity[kind], plan.now)
            p12 = None
            if priv is not None:
                assert plan.pkcs12_passphrase is not None  # plan() required it for a generated key
                p12 = pkcs12.serialize_key_and_certificates(
                    f"{kind}-{row.serial}".encode(), priv, x509.load_der_x509_certificate(row.der),
                    [issuer.certificate], serialization.BestAvailableEncryption(plan.pkcs12_passphrase.encode()),
                )
            issued.append(Issued(row, issuer, p12))
        return issued

    def _build_and_add(self, s: Session, holder: Holder, kind: Kind, issuer: Issuer, pub: rsa.RSAPublicKey,
                       not_before: datetime, not_after: datetime, now: datetime) -> Certificate:
        serial = next_values(s, SERIALS[kind], start=SERIAL_START)
        muni = municipalities.get(holder.municipality)
        if kind == Kind.SIGN:
            cn = profile.sign_cn(now, serial, muni)
            subject = names.sign_subject(muni, cn)
            info = b4.Basic4(holder.name, holder.date_of_birth, holder.gender, holder.address,
                             holder.name_flags, holder.address_flags, holder.municipality)
        else:
            cn = profile.auth_cn()
            subject = names.auth_subject(cn)
            info = None
        cert = self.keyring.sign_certificate(profile.ee_certificate_builder(
            kind=kind, serial=serial, subject=subject, public_key=pub, not_before=not_before, not_after=not_after,
            issuer=issuer.info, municipality=muni, profile=self.ee_profile, basic4=info,
        ), issuer.id)
        row = Certificate(
            ca_id=issuer.id, kind=kind, serial=serial, holder_id=holder.id, municipality=holder.municipality,
            subject_cn=cn, not_before=not_before, not_after=not_after, status=CertState.GOOD, status_seq=0,
            stored_der=cert.public_bytes(serialization.Encoding.DER), issued_at=now,
        )
        s.add(row)
        s.flush()
        note_partitions(s.connection(), [(issuer.id, holder.municipality)])
        return row

    @audit.operation("cert.issue", "holder {holder_id} {kinds}")
    def issue(self, holder_id: Any, kinds: Any = "both", **spec: Any) -> list[Issued]:
        """Issue certificates of ``kinds`` to a holder (docs/profile.md), in one transaction.

        ``spec``: ``public_key`` / ``csr`` (or per kind ``sign_public_key``, ``auth_csr``, ...), or
        ``pkcs12_passphrase`` for a key generated here and returned as PKCS#12."""
        kinds = kinds_of(kinds)
        passphrase = pkcs12_passphrase(spec)
        holder = self.holders.get_holder(holder_id)
        plan = self.plan(holder, self.subject_keys(kinds, spec), pkcs12_passphrase=passphrase)
        with self.begin() as work:
            self.check_custody(work, holder.id)
            return self.stage(work, plan)

    def issue_keys(self, work: UnitOfWork, holder_id: Any, public_keys: Mapping[str, rsa.RSAPublicKey], *,
                   replace: bool = False, generation: int | None = None) -> list[Issued]:
        """Certify keys generated on the holder's card (the kit's software card) inside the caller's
        unit of work, so the caller's own rows commit, or roll back, with the certificates.

        ``replace``: the holder's valid (or held) certificates of these kinds, wherever they are,
        are revoked as superseded in the same unit, so the new ones are the only valid ones."""
        kinds = kinds_of(list(public_keys))
        holder = Holders.load(work.session, holder_id_of(holder_id), lock=True)
        subject_keys = {k: (keys.check_subject_key(public_keys[k], f"{k}_public_key"), None) for k in kinds}
        plan = self.plan(holder, subject_keys, replace=replace, generation=generation)
        if replace:
            self.supersede(work, holder, kinds)
        return self.stage(work, plan)


def pkcs12_passphrase(spec: Mapping[str, Any]) -> str | None:
    """The passphrase protecting generated keys, checked before anything else about the request."""
    passphrase = spec.get("pkcs12_passphrase")
    if passphrase is not None and (not isinstance(passphrase, str) or len(passphrase) < 4 or len(passphrase) > 128):
        raise InvalidInput("must be a string of 4-128 characters", field="pkcs12_passphrase")
    return passphrase
