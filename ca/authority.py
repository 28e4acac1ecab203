"""The authority: CA generations, holders, issuance, revocation and resident-registry events.

Every public method validates its input completely before writing anything, and writes in
one transaction, so bad input changes nothing.  Revocations bump the global revocation
sequence and publish it on the shared epoch (:mod:`ca.epoch`) *after* the commit, so that
once a revoke call has returned no responder answers "good" for that certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import func, select, update

from jpki_mock.ca import basic4 as b4
from jpki_mock import municipalities, names
from jpki_mock.ca import keys, profile
from jpki_mock.clock import JST, Clock
from jpki_mock.config import Config
from jpki_mock.epoch import RevocationEpoch
from jpki_mock.errors import (
    AlreadyRevoked, Conflict, HoldNotReleasable, InvalidInput, NotEligible, NotFound, UnknownIssuer,
)
from jpki_mock.ca.issuers import Issuer
from jpki_mock.ca.models import CAGeneration, Certificate, Holder
from jpki_mock.ca.signer import RESPONDER_SERIAL_START, RESPONDER_SERIALS, Keyring
from jpki_mock.ca.status import HOLD, REASON_NAMES, REASONS, REVOCATION_SEQ
from jpki_mock.access import new_token
from jpki_mock.vocab import HolderEvent, HolderState
from jpki_mock.db import SERIAL_START, Counter, Store, next_values

MIN_SIGN_AGE = 15  # no signature certificate for under-15s [C]
CERT_YEARS = 5  # valid until the 5th birthday after issuance [C]
SERIALS = {"sign": "serial_sign", "auth": "serial_auth"}
CA_SERIALS = "serial_ca"
HOLDER_STATES = tuple(HolderState)
EVENTS = tuple(HolderEvent)
MAX_PAGE = 1000


def kinds_of(value: Any, field: str = "kinds") -> list[str]:
    """``"sign"``, ``"auth"``, ``"both"`` or a list of kinds -> ordered list of kinds."""
    if value in (None, "both"):
        return list(names.KINDS)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or any(v not in names.KINDS for v in value):
        raise InvalidInput(f"{value!r} is not a certificate kind", field=field, allowed=["sign", "auth", "both"])
    return [k for k in names.KINDS if k in value]


def reason_code(value: Any, field: str = "reason") -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in REASON_NAMES:
        return value
    if isinstance(value, str) and value in REASONS:
        return REASONS[value]
    raise InvalidInput(f"{value!r} is not a JPKI revocation reason", field=field, allowed=list(REASONS))


def der_to_pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Issued:
    certificate: Certificate
    issuer: Issuer
    pkcs12: bytes | None = None


class Authority:
    def __init__(self, config: Config, store: Store, clock: Clock, keyring: Keyring, epoch: RevocationEpoch | None = None):
        self.config = config
        self.store = store
        self.clock = clock
        self.keyring = keyring
        self.epoch = epoch
        self._issuers: dict[int, Issuer] | None = None

    # ------------------------------------------------------------------ CA generations
    def init(self, hierarchy: str | None = None) -> str:
        """Create generation 1 of both CAs and the first admin token; returns the token (shown once)."""
        hierarchy = hierarchy or self.config.hierarchy
        self.store.create_schema()
        if self.store.is_initialised():
            raise Conflict("this data directory already has a CA", field="data_dir",
                           allowed="use `jpki-mock ca rollover` for a new key generation")
        with self.store.session() as s:
            # Every counter exists from the start: creating one on first use races between the
            # responder processes that issue their delegated certificates at the same moment.
            for name, start in ((SERIALS["sign"], SERIAL_START), (SERIALS["auth"], SERIAL_START),
                                (CA_SERIALS, 1), (REVOCATION_SEQ, 1), (RESPONDER_SERIALS, RESPONDER_SERIAL_START)):
                s.add(Counter(name=name, value=start - 1))
            s.flush()
            for kind in names.KINDS:
                self._new_generation(s, kind, hierarchy, 1)
            token = new_token(s, "init", self.clock.now())
        self._issuers = None
        return token

    def _new_generation(self, s, kind: str, hierarchy: str, generation: int) -> CAGeneration:
        key = keys.generate_rsa()
        serial = next_values(s, CA_SERIALS, start=1)
        cert = profile.build_ca_certificate(kind, hierarchy, key, serial, self.clock.now())
        row = CAGeneration(
            kind=kind, generation=generation, hierarchy=hierarchy, serial=serial,
            cert_der=cert.public_bytes(serialization.Encoding.DER),
            key_pkcs8=keys.encrypt_key(key, self.config.key_passphrase),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, created_at=self.clock.now(),
        )
        s.add(row)
        s.flush()
        return row

    def rollover(self, kind: str) -> Issuer:
        """A new key generation with the same DN; older generations stay verifiable and revocable."""
        if kind not in names.KINDS:
            raise InvalidInput(f"{kind!r} is not a CA kind", field="kind", allowed=list(names.KINDS))
        self.store.require_initialised()
        with self.store.session() as s:
            latest = s.scalars(
                select(CAGeneration).where(CAGeneration.kind == kind).order_by(CAGeneration.generation.desc()).limit(1)
            ).one()
            row = self._new_generation(s, kind, latest.hierarchy, latest.generation + 1)
            issuer = Issuer.from_row(row)
        self._issuers = None
        self.keyring.forget()
        return issuer

    def issuers(self) -> list[Issuer]:
        if self._issuers is None:
            with self.store.session() as s:
                rows = s.scalars(select(CAGeneration).order_by(CAGeneration.kind, CAGeneration.generation)).all()
                self._issuers = {r.id: Issuer.from_row(r) for r in rows}
        return list(self._issuers.values())

    def issuer(self, kind: str, generation: int | None = None) -> Issuer:
        """The named generation, or the current one (highest, unrevoked) when ``generation`` is None."""
        if kind not in names.KINDS:
            raise InvalidInput(f"{kind!r} is not a CA kind", field="kind", allowed=list(names.KINDS))
        candidates = [i for i in self.issuers() if i.kind == kind]
        if not candidates:
            self.store.require_initialised()
        if generation is None:
            live = [i for i in candidates if i.revoked_at is None]
            if not live:
                raise UnknownIssuer(f"no usable {kind} CA generation", field="kind")
            return max(live, key=lambda i: i.generation)
        for i in candidates:
            if i.generation == generation:
                return i
        raise UnknownIssuer(
            f"no {kind} CA generation {generation}", field="generation",
            allowed=[i.generation for i in candidates],
        )

    def issuer_by_id(self, ca_id: int) -> Issuer:
        for i in self.issuers():
            if i.id == ca_id:
                return i
        self._issuers = None
        for i in self.issuers():
            if i.id == ca_id:
                return i
        raise UnknownIssuer(f"no CA generation with id {ca_id}")

    def parse_issuer_ref(self, ref: str) -> tuple[str, int | None]:
        """``sign`` / ``auth`` (any generation) or ``sign-g2`` (that generation)."""
        if not isinstance(ref, str):
            raise InvalidInput("must be a string", field="issuer", allowed=["sign", "auth", "sign-g1", "auth-g2", "..."])
        kind, _, gen = ref.partition("-g")
        if kind not in names.KINDS or (gen and not gen.isdigit()):
            raise InvalidInput(f"{ref!r} is not an issuer", field="issuer", allowed=["sign", "auth", "sign-g1", "auth-g2", "..."])
        generation = int(gen) if gen else None
        if generation is not None:
            self.issuer(kind, generation)
        return kind, generation

    def revoke_ca(self, kind: str, generation: int, reason: Any = "cACompromise") -> Issuer:
        """Revoke a CA generation's certificate: it goes on that kind's ARL."""
        code = reason_code(reason)
        issuer = self.issuer(kind, generation)
        if issuer.revoked_at is not None:
            raise AlreadyRevoked(f"{issuer.label} is already revoked", field="generation")
        with self.store.session() as s:
            s.execute(update(CAGeneration).where(CAGeneration.id == issuer.id)
                      .values(revoked_at=self.clock.now(), reason=code))
        self._issuers = None
        return self.issuer_by_id(issuer.id)

    # ------------------------------------------------------------------ holders
    def default_card_expiry(self, birth: date, today: date) -> date:
        """The card itself: 10th birthday after issue for adults, 5th for under-18s [C]."""
        years = 10 if b4.age_on(birth, today) >= 18 else 5
        return b4.nth_birthday_after(birth, today, years)

    def create_holder(self, data: Mapping[str, Any]) -> Holder:
        info = b4.validate(data)
        today = self.clock.now().astimezone(JST).date()
        birth = info.birth_date
        if birth > today:
            raise InvalidInput("is in the future", field="date_of_birth")
        expiry = data.get("card_expiry")
        if expiry is None:
            card_expiry = self.default_card_expiry(birth, today)
        else:
            try:
                card_expiry = date.fromisoformat(expiry) if isinstance(expiry, str) else None
            except ValueError:
                card_expiry = None
            if card_expiry is None:
                raise InvalidInput(f"{expiry!r} is not an ISO date", field="card_expiry", allowed="YYYY-MM-DD")
            if card_expiry <= today:
                raise InvalidInput("is not after today", field="card_expiry")
        unknown = set(data) - {"name", "date_of_birth", "gender", "address", "name_flags", "address_flags",
                               "municipality", "card_expiry"}
        if unknown:
            raise InvalidInput(f"unknown field(s) {sorted(unknown)}", field=sorted(unknown)[0],
                               allowed=["name", "date_of_birth", "gender", "address", "name_flags",
                                        "address_flags", "municipality", "card_expiry"])
        now = self.clock.now()
        with self.store.session() as s:
            holder = Holder(**info.as_dict(), card_expiry=card_expiry, state="active", created_at=now, updated_at=now)
            s.add(holder)
        return holder

    def get_holder(self, holder_id: Any) -> Holder:
        if isinstance(holder_id, str) and holder_id.isdigit():
            holder_id = int(holder_id)
        if not isinstance(holder_id, int) or isinstance(holder_id, bool):
            raise InvalidInput(f"{holder_id!r} is not a holder id", field="holder")
        with self.store.session() as s:
            holder = s.get(Holder, holder_id)
            if holder is None:
                raise NotFound(f"no holder with id {holder_id}", field="holder")
            _ = holder.certificates
            return holder

    def list_holders(self, *, municipality: str | None = None, state: str | None = None,
                     limit: int = 100, offset: int = 0) -> list[Holder]:
        limit, offset = _page(limit, offset)
        q = select(Holder).order_by(Holder.id)
        if municipality:
            municipalities.get(municipality)
            q = q.where(Holder.municipality == municipality)
        if state:
            if state not in HOLDER_STATES:
                raise InvalidInput(f"{state!r} is not a holder state", field="state", allowed=list(HOLDER_STATES))
            q = q.where(Holder.state == state)
        with self.store.session() as s:
            return list(s.scalars(q.limit(limit).offset(offset)).all())

    # ------------------------------------------------------------------ issuance
    def validity_for(self, holder: Holder, kind: str, now: datetime) -> tuple[datetime, datetime]:
        today = now.astimezone(JST).date()
        birth = b4.decode_dob(holder.date_of_birth)
        if kind == "sign" and b4.age_on(birth, today) < MIN_SIGN_AGE:
            raise NotEligible(
                f"holder {holder.id} is {b4.age_on(birth, today)}; JPKI issues no signature certificate under {MIN_SIGN_AGE}",
                field="kinds", allowed=["auth"],
            )
        end = min(b4.nth_birthday_after(birth, today, CERT_YEARS), holder.card_expiry)
        not_after = profile.jst_end_of_day(end)
        if not_after <= now:
            raise Conflict(f"holder {holder.id}'s card expired on {holder.card_expiry}", field="card_expiry")
        return now, not_after

    def _subject_keys(self, kinds: list[str], spec: Mapping[str, Any]) -> dict[str, tuple[rsa.RSAPublicKey, rsa.RSAPrivateKey | None]]:
        """Per kind: the caller's public key / CSR, or a key we generate (returned as PKCS#12)."""
        out = {}
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

    def issue(self, holder_id: Any, kinds: Any = "both", **spec: Any) -> list[Issued]:
        """Issue certificates of ``kinds`` to a holder (JPKI_PROFILE.md section 3).

        ``_generation`` (scenario catalog only, never reachable from the API or CLI) issues from
        an older CA generation, so the catalog can show previous-generation certificates."""
        kinds = kinds_of(kinds)
        passphrase = spec.get("pkcs12_passphrase")
        if passphrase is not None and (not isinstance(passphrase, str) or len(passphrase) < 4 or len(passphrase) > 128):
            raise InvalidInput("must be a string of 4-128 characters", field="pkcs12_passphrase")
        holder = self.get_holder(holder_id)
        subject_keys = self._subject_keys(kinds, spec)
        if holder.state != "active":
            raise Conflict(f"holder {holder.id}'s card is {holder.state}", field="holder")
        now = self.clock.now()
        if not spec.get("_replace"):
            for c in holder.certificates:
                if c.kind in kinds and c.status == "good" and c.not_after > now:
                    raise Conflict(
                        f"holder {holder.id} already has a valid {c.kind} certificate (serial {c.serial}); "
                        "use the renewal event to replace it", field="kinds",
                    )
        validity = {k: self.validity_for(holder, k, now) for k in kinds}
        for kind, (pub, _) in list(subject_keys.items()):
            if pub is None:
                priv = keys.generate_rsa()
                subject_keys[kind] = (priv.public_key(), priv)
        issued = []
        with self.store.session() as s:
            for kind in kinds:
                pub, priv = subject_keys[kind]
                issuer = self.issuer(kind, spec.get("_generation"))
                cert_row = self._build_and_add(s, holder, kind, issuer, pub, *validity[kind], now)
                p12 = None
                if priv is not None:
                    p12 = pkcs12.serialize_key_and_certificates(
                        f"{kind}-{cert_row.serial}".encode(), priv, x509.load_der_x509_certificate(cert_row.der),
                        [issuer.certificate], serialization.BestAvailableEncryption(passphrase.encode()),
                    )
                issued.append(Issued(cert_row, issuer, p12))
        return issued

    def _build_and_add(self, s, holder: Holder, kind: str, issuer: Issuer, pub, not_before, not_after, now) -> Certificate:
        serial = next_values(s, SERIALS[kind])
        muni = municipalities.get(holder.municipality)
        if kind == "sign":
            cn = profile.sign_cn(now, serial, muni)
            subject = names.sign_subject(muni, cn)
            info = b4.Basic4(holder.name, holder.date_of_birth, holder.gender, holder.address,
                             holder.name_flags, holder.address_flags, holder.municipality)
        else:
            cn = profile.auth_cn()
            subject = names.auth_subject(cn)
            info = None
        cert = profile.build_ee_certificate(
            kind=kind, serial=serial, subject=subject, public_key=pub, not_before=not_before, not_after=not_after,
            issuer=issuer.info, issuer_key=self.keyring._ca_key_for_issuance(issuer.id), municipality=muni,
            profile=self.ee_profile, basic4=info,
        )
        row = Certificate(
            ca_id=issuer.id, kind=kind, serial=serial, holder_id=holder.id, municipality=holder.municipality,
            subject_cn=cn, not_before=not_before, not_after=not_after, status="good", status_seq=0,
            der=cert.public_bytes(serialization.Encoding.DER), issued_at=now,
        )
        s.add(row)
        s.flush()
        return row

    @property
    def ee_profile(self) -> profile.EEProfile:
        return profile.EEProfile(self.config.hierarchy, self.config.faithful, self.config.public_url)

    # ------------------------------------------------------------------ certificates
    def _find(self, s, issuer_ref: str, serial: Any) -> Certificate:
        kind, generation = self.parse_issuer_ref(issuer_ref)
        serial = parse_serial(serial)
        if serial > 2**63 - 1:  # beyond BIGINT: we never issued it
            raise NotFound(f"no {issuer_ref} certificate with serial {serial}", field="serial")
        q = select(Certificate).where(Certificate.kind == kind, Certificate.serial == serial)
        if generation is not None:
            q = q.where(Certificate.ca_id == self.issuer(kind, generation).id)
        cert = s.scalars(q).first()
        if cert is None:
            raise NotFound(f"no {issuer_ref} certificate with serial {serial}", field="serial")
        return cert

    def get_certificate(self, issuer_ref: str, serial: Any) -> Certificate:
        with self.store.session() as s:
            return self._find(s, issuer_ref, serial)

    def list_certificates(self, *, kind: str | None = None, status: str | None = None, municipality: str | None = None,
                          holder: Any = None, generation: int | None = None, expiring_within_days: Any = None,
                          limit: Any = 100, offset: Any = 0) -> list[Certificate]:
        limit, offset = _page(limit, offset)
        now = self.clock.now()
        q = select(Certificate).order_by(Certificate.id)
        if kind is not None:
            kinds_of(kind, "kind")
            if kind != "both":
                q = q.where(Certificate.kind == kind)
            if generation is not None:
                q = q.where(Certificate.ca_id == self.issuer(kind, _int(generation, "generation")).id)
        elif generation is not None:
            raise InvalidInput("needs kind", field="generation")
        if status is not None:
            allowed = ["good", "revoked", "hold", "expired"]
            if status not in allowed:
                raise InvalidInput(f"{status!r} is not a status", field="status", allowed=allowed)
            if status == "good":
                q = q.where(Certificate.status == "good", Certificate.not_after > now)
            elif status == "revoked":
                q = q.where(Certificate.status == "revoked")
            elif status == "hold":
                q = q.where(Certificate.status == "revoked", Certificate.reason == HOLD)
            else:
                q = q.where(Certificate.not_after <= now)
        if municipality is not None:
            municipalities.get(municipality)
            q = q.where(Certificate.municipality == municipality)
        if holder is not None:
            q = q.where(Certificate.holder_id == _int(holder, "holder"))
        if expiring_within_days is not None:
            days = _int(expiring_within_days, "days")
            if not 0 <= days <= 3650:
                raise InvalidInput(f"{days} is out of range", field="days", allowed="0-3650")
            q = q.where(Certificate.status == "good", Certificate.not_after > now,
                        Certificate.not_after <= now + timedelta(days=days)).order_by(None).order_by(Certificate.not_after, Certificate.id)
        with self.store.session() as s:
            return list(s.scalars(q.limit(limit).offset(offset)).all())

    def expiring(self, days: Any, limit: Any = 100, offset: Any = 0) -> list[Certificate]:
        """Good certificates whose notAfter falls within ``days`` (J-LIS mails expiry notices)."""
        return self.list_certificates(expiring_within_days=days, limit=limit, offset=offset)

    def count_expiring(self, days: Any) -> int:
        days = _int(days, "days")
        now = self.clock.now()
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(Certificate).where(
                Certificate.status == "good", Certificate.not_after > now,
                Certificate.not_after <= now + timedelta(days=days))) or 0)

    # ------------------------------------------------------------------ revocation
    def revoke(self, issuer_ref: str, serial: Any, reason: Any = "unspecified") -> Certificate:
        code = reason_code(reason)
        with self.store.session() as s:
            cert = self._find(s, issuer_ref, serial)
            seq = self._revoke_row(s, cert, code)
        self._publish(seq)
        return cert

    def _revoke_row(self, s, cert: Certificate, code: int) -> int:
        if cert.status == "revoked":
            if cert.reason == HOLD and code != HOLD:
                pass  # a hold becomes a permanent revocation; the hold is never released [C]
            else:
                raise AlreadyRevoked(
                    f"{cert.kind} certificate {cert.serial} is already revoked "
                    f"({REASON_NAMES.get(cert.reason, cert.reason)} at {cert.revoked_at.isoformat()})",
                    field="serial",
                )
        seq = next_values(s, REVOCATION_SEQ, start=1)
        if cert.status != "revoked":
            cert.revoked_at = self.clock.now()
        cert.status = "revoked"
        cert.reason = code
        cert.status_seq = seq
        s.flush()
        return seq

    def _publish(self, seq: int | None) -> None:
        if seq and self.epoch is not None:
            self.epoch.publish(seq)

    def release_hold(self, issuer_ref: str, serial: Any) -> None:
        """Always refused: JPKI never releases a certificateHold (removeFromCRL is not used) [C]."""
        cert = self.get_certificate(issuer_ref, serial)
        if cert.reason != HOLD:
            raise Conflict(f"{cert.kind} certificate {cert.serial} is not on hold", field="serial")
        raise HoldNotReleasable(
            "a JPKI certificateHold is never released: revoke the held certificate and issue a new one "
            "(event 'renewal' or revoke + issue)", field="serial",
        )

    # ------------------------------------------------------------------ resident-registry events
    def event(self, holder_id: Any, event: str, **data: Any) -> dict[str, Any]:
        """Apply a resident-registry or card event (JPKI_PROFILE.md section 4); returns what changed."""
        if event not in EVENTS:
            raise InvalidInput(f"{event!r} is not an event", field="event", allowed=list(EVENTS))
        holder = self.get_holder(holder_id)
        if holder.state in ("deceased", "returned") and event != "change":
            raise Conflict(f"holder {holder.id}'s card is {holder.state}", field="holder")
        handler = getattr(self, f"_event_{event}")
        return handler(holder, **data)

    def _active(self, s, holder: Holder, kinds: Iterable[str], *, include_held: bool = False) -> list[Certificate]:
        q = select(Certificate).where(Certificate.holder_id == holder.id, Certificate.kind.in_(list(kinds)))
        rows = s.scalars(q).all()
        return [c for c in rows if c.status == "good" or (include_held and c.reason == HOLD)]

    def _revoke_many(self, holder: Holder, kinds: Iterable[str], code: int, state: str | None = None,
                     holder_update: Mapping[str, Any] | None = None, include_held: bool = False) -> list[Certificate]:
        seq = None
        with self.store.session() as s:
            h = s.get(Holder, holder.id)
            certs = self._active(s, h, kinds, include_held=include_held)
            for cert in certs:
                seq = self._revoke_row(s, cert, code)
            for key, value in (holder_update or {}).items():
                setattr(h, key, value)
            if state:
                h.state = state
            h.updated_at = self.clock.now()
        self._publish(seq)
        return certs

    @staticmethod
    def _summary(event: str, revoked: list[Certificate], **extra: Any) -> dict[str, Any]:
        return {"event": event, "revoked": [
            {"kind": c.kind, "serial": c.serial, "reason": REASON_NAMES[c.reason]} for c in revoked], **extra}

    def _event_change(self, holder: Holder, changes: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """A basic-four change revokes the signature certificate (affiliationChanged); the
        user-auth certificate carries no personal data and stays valid [C]."""
        if extra:
            raise InvalidInput(f"unknown field(s) {sorted(extra)}", field=sorted(extra)[0], allowed=["changes"])
        if not isinstance(changes, Mapping) or not changes:
            raise InvalidInput("must be an object with the changed basic-four items", field="changes",
                               allowed=["name", "date_of_birth", "gender", "address", "name_flags",
                                        "address_flags", "municipality"])
        current = {k: getattr(holder, k) for k in ("name", "date_of_birth", "gender", "address", "municipality")}
        merged = dict(current)
        merged.update(changes)
        # Flags follow their text: reset to all-zero when the text changes and no flags are given.
        if "name" in changes and "name_flags" not in changes:
            merged.pop("name_flags", None)
        elif "name_flags" not in changes:
            merged["name_flags"] = holder.name_flags
        if "address" in changes and "address_flags" not in changes:
            merged.pop("address_flags", None)
        elif "address_flags" not in changes:
            merged["address_flags"] = holder.address_flags
        if "address" in changes and "municipality" not in changes:
            merged.pop("municipality")
        info = b4.validate(merged)
        new = info.as_dict()
        if all(getattr(holder, k) == v for k, v in new.items()):
            raise InvalidInput("changes nothing", field="changes")
        revoked = self._revoke_many(holder, ["sign"], REASONS["affiliationChanged"], holder_update=new)
        return self._summary("change", revoked, holder=new)

    def _event_death(self, holder: Holder) -> dict[str, Any]:
        revoked = self._revoke_many(holder, names.KINDS, REASONS["cessationOfOperation"], state="deceased", include_held=True)
        return self._summary("death", revoked)

    def _event_card_return(self, holder: Holder) -> dict[str, Any]:
        revoked = self._revoke_many(holder, names.KINDS, REASONS["cessationOfOperation"], state="returned", include_held=True)
        return self._summary("card_return", revoked)

    def _event_request(self, holder: Holder, reason: Any = "cessationOfOperation", kinds: Any = "both") -> dict[str, Any]:
        """The holder asks the municipality to revoke (one or both certificates)."""
        code = reason_code(reason)
        if code == HOLD:
            raise InvalidInput("a hold comes from a loss report: use the 'loss' event", field="reason")
        revoked = self._revoke_many(holder, kinds_of(kinds), code, include_held=True)
        return self._summary("request", revoked)

    def _event_loss(self, holder: Holder) -> dict[str, Any]:
        """Loss reported to the 24h hotline: both certificates on hold [C]."""
        if holder.state == "lost":
            raise Conflict(f"holder {holder.id}'s card is already reported lost", field="holder")
        revoked = self._revoke_many(holder, names.KINDS, HOLD, state="lost")
        return self._summary("loss", revoked)

    def _event_renewal(self, holder: Holder, **spec: Any) -> dict[str, Any]:
        """New certificates replace the current ones, which are revoked as superseded.  Also the way
        back from a hold: a found card gets its certificates revoked and reissued [C]."""
        with self.store.session() as s:
            current = self._active(s, holder, names.KINDS, include_held=True)
        kinds = [k for k in names.KINDS if any(c.kind == k for c in current)] or kinds_of(spec.pop("kinds", "both"))
        spec.pop("kinds", None)
        if holder.state == "lost":
            with self.store.session() as s:
                s.get(Holder, holder.id).state = "active"
        try:
            issued = self.issue(holder.id, kinds, _replace=True, **spec)
        except Exception:
            if holder.state == "lost":
                with self.store.session() as s:
                    s.get(Holder, holder.id).state = "lost"
            raise
        seq, revoked = None, []
        with self.store.session() as s:
            for c in current:
                row = s.get(Certificate, c.id)
                seq = self._revoke_row(s, row, REASONS["superseded"])
                revoked.append(row)
        self._publish(seq)
        return {**self._summary("renewal", revoked), "issued": issued}


def parse_serial(value: Any) -> int:
    """Decimal, or hexadecimal with a 0x prefix."""
    if isinstance(value, int) and not isinstance(value, bool):
        serial = value
    elif isinstance(value, str):
        try:
            serial = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
        except ValueError:
            raise InvalidInput(f"{value!r} is not a serial number", field="serial",
                               allowed="decimal, or hexadecimal with 0x") from None
    else:
        raise InvalidInput(f"{value!r} is not a serial number", field="serial")
    if not 0 < serial < 2**159:
        raise InvalidInput(f"{serial} is out of range", field="serial", allowed="1 .. 2^159-1 (RFC 5280 section 4.1.2.2)")
    return serial


def _int(value: Any, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise InvalidInput(f"{value!r} is not a whole number", field=field)


def _page(limit: Any, offset: Any) -> tuple[int, int]:
    limit, offset = _int(limit, "limit"), _int(offset, "offset")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"{limit} is out of range", field="limit", allowed=f"1-{MAX_PAGE}")
    if offset < 0:
        raise InvalidInput("must not be negative", field="offset")
    return limit, offset
