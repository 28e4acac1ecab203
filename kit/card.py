"""The software My Number card: two key pairs generated on the card, the real PIN rules.

docs/sources.md section 5 [C]: the signature password is 6-16 upper-case letters and digits
and locks after 5 wrong tries; the user-authentication PIN is 4 digits and locks after 3.
Reading the signature certificate needs the password; the user-authentication certificate
reads freely.  A correct entry restores the full count, as on the card.

Keys never leave the card unencrypted: each private key is stored as AES-256-GCM under a key
derived with scrypt from the PIN / password and the configured key passphrase, bound to
(holder, kind) by the GCM associated data.  A wrong PIN fails the GCM tag check, which is
also how the card tells a wrong PIN from a right one.  Because the key is sealed under the
PIN, an operator cannot recover a forgotten PIN: :meth:`CardService.reset` writes a new
key pair and certificate with a new PIN (the municipality's re-issue); :meth:`unlock` only
restores the try counter for a holder who still knows the PIN.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from sqlalchemy import select
from sqlalchemy.orm import Session

from jpki_mock import audit, vocab
from jpki_mock.ca import basic4 as b4
from jpki_mock.ca import keys
from jpki_mock.ca.authority import MIN_SIGN_AGE, Authority
from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.clock import JST
from jpki_mock.errors import ConfigError, Conflict, Forbidden, InvalidInput, NotEligible, NotFound
from jpki_mock.kit.models import Card

KINDS = tuple(k.value for k in vocab.KINDS)  # the card holds one key of each kind
#: wrong tries before the PIN locks [C]
MAX_TRIES = {"sign": 5, "auth": 3}
PIN_RULES = {
    "sign": (re.compile(r"[A-Z0-9]{6,16}"), "6-16 upper-case letters A-Z and digits 0-9"),
    "auth": (re.compile(r"[0-9]{4}"), "4 digits"),
}
PIN_NAMES = {"sign": "signature password", "auth": "user-authentication PIN"}
#: the request field that carries each kind's PIN
PIN_FIELDS = {"sign": "password", "auth": "pin"}
SCHEMES = ("pkcs1", "pss", "cms")
#: largest document the card signs in one call (the real card signs a hash; we hash here).
MAX_DATA = 16 * 1024 * 1024
MAX_CHALLENGE = 1024

_BLOB_VERSION = b"\x01"
_SALT, _NONCE = 16, 12
# scrypt cost: ~25 ms and 4 MiB per derivation, once per card operation.  The configured passphrase
# (random, from `jpki-mock init`) carries the entropy; scrypt makes each PIN guess cost time on top.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**12, 8, 1


class WrongPin(Forbidden):
    """The PIN / password did not open the key; ``tries_left`` says how many remain."""

    code = "wrong_pin"


class PinLocked(Conflict):
    """No tries left: only an operator unlock or reset opens the key again."""

    code = "pin_locked"


def check_kind(kind: Any, field: str = "kind") -> str:
    if kind not in KINDS:
        raise InvalidInput(f"{kind!r} is not a card key", field=field, allowed=list(KINDS))
    return kind


def check_pin(kind: str, value: Any, field: str | None = None) -> str:
    """Format check, done before the card is touched: a malformed entry costs no try
    (the card's middleware rejects it before sending VERIFY)."""
    field = field or PIN_FIELDS[kind]
    pattern, allowed = PIN_RULES[kind]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = "missing" if value is None else "not allowed"
        raise InvalidInput(f"the {PIN_NAMES[kind]} is {shown}", field=field, allowed=allowed)
    return value


def _derive(pin: str, passphrase: str, salt: bytes) -> bytes:
    if not passphrase:
        raise ConfigError("no key passphrase configured", field="key_passphrase")
    kdf = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return kdf.derive(pin.encode() + b"\x00" + passphrase.encode())


def _aad(holder_id: int, kind: str) -> bytes:
    return f"jpki-mock card holder={holder_id} key={kind}".encode()


def seal_key(key: rsa.RSAPrivateKey, pin: str, passphrase: str, holder_id: int, kind: str) -> bytes:
    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    sealed = AESGCM(_derive(pin, passphrase, salt)).encrypt(nonce, der, _aad(holder_id, kind))
    return _BLOB_VERSION + salt + nonce + sealed


def open_key(blob: bytes, pin: str, passphrase: str, holder_id: int, kind: str) -> rsa.RSAPrivateKey | None:
    """The key, or None when the PIN (or passphrase) is wrong."""
    blob = bytes(blob)
    salt = blob[1:1 + _SALT]
    nonce = blob[1 + _SALT:1 + _SALT + _NONCE]
    try:
        der = AESGCM(_derive(pin, passphrase, salt)).decrypt(nonce, blob[1 + _SALT + _NONCE:], _aad(holder_id, kind))
    except InvalidTag:
        return None
    # The GCM tag already proved these are the bytes we sealed: skip OpenSSL's RSA key check,
    # which costs more than the signature itself.
    key = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
    assert isinstance(key, rsa.RSAPrivateKey)  # seal_key seals RSA keys only
    return key


@dataclass
class CardState:
    holder: Holder
    card: Card
    certificates: dict[str, Certificate]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"holder": self.holder.id, "holder_state": self.holder.state}
        for kind in KINDS:
            blob = self.card.sign_key if kind == "sign" else self.card.auth_key
            tries = getattr(self.card, f"{kind}_tries")
            cert = self.certificates.get(kind)
            out[kind] = None if blob is None else {
                "tries_left": tries, "max_tries": MAX_TRIES[kind], "locked": tries == 0,
                "serial": cert.serial if cert else None, "certificate_status": cert.status if cert else None,
            }
        return out


class CardService:
    """Card operations against one authority (and so one store, clock and key passphrase)."""

    def __init__(self, authority: Authority):
        self.authority = authority
        self.store = authority.store
        self.clock = authority.clock

    @property
    def _passphrase(self) -> str:
        return self.authority.config.key_passphrase

    # ------------------------------------------------------------------ issuance
    def _card_kinds(self, holder: Holder, auth_pin: Any, sign_password: Any) -> list[str]:
        """The key pairs a card for ``holder`` gets today, after checking the PINs it will hold: both,
        or the user-authentication one alone under 15, when a signature password is refused [C]."""
        check_pin("auth", auth_pin, "auth_pin")
        age = age_today(holder, self.clock.now())
        if age < MIN_SIGN_AGE:
            if sign_password is not None:
                raise NotEligible(f"holder {holder.id} is {age}; JPKI issues no signature certificate under "
                                  f"{MIN_SIGN_AGE}, so the card has no signature password", field="sign_password")
            return ["auth"]
        check_pin("sign", sign_password, "sign_password")
        return list(KINDS)

    @audit.operation("card.create", "holder {holder_id}")
    def create(self, holder_id: Any, *, auth_pin: Any, sign_password: Any = None,
               generation: int | None = None) -> CardState:
        """Generate both key pairs on a new card and have the CA certify them.

        A holder under 15 gets no signature certificate [C], so no signature password either.
        ``generation`` (scenario catalog only) certifies with an older CA generation."""
        holder = self.authority.get_holder(holder_id)
        kinds = self._card_kinds(holder, auth_pin, sign_password)
        with self.store.session() as s:
            if s.scalars(select(Card.id).where(Card.holder_id == holder.id)).first() is not None:
                raise Conflict(f"holder {holder.id} already has a card", field="holder",
                               allowed="`jpki-mock card reset` writes a new key and certificate onto it")
        pins = {"sign": sign_password, "auth": auth_pin}
        private = {k: keys.generate_rsa() for k in kinds}  # generated on the card [C]
        sealed = {k: seal_key(private[k], pins[k], self._passphrase, holder.id, k) for k in kinds}
        # One unit of work: the certificates and the card that holds their keys commit together.
        with self.authority.unit_of_work() as work:
            issued = {i.certificate.kind: i.certificate for i in self.authority.issue_keys(
                work, holder.id, {k: private[k].public_key() for k in kinds}, generation=generation)}
            now = self.clock.now()
            work.session.add(Card(
                holder_id=holder.id, sign_key=sealed.get("sign"), auth_key=sealed["auth"],
                sign_cert_id=issued["sign"].id if "sign" in issued else None, auth_cert_id=issued["auth"].id,
                sign_tries=MAX_TRIES["sign"] if "sign" in kinds else 0, auth_tries=MAX_TRIES["auth"],
                created_at=now, updated_at=now,
            ))
        return self.state(holder.id)

    @audit.operation("card.reset", "holder {holder_id} {kind}")
    def reset(self, holder_id: Any, kind: Any, new_pin: Any) -> CardState:
        """Operator action at the municipality: a new key pair under a new PIN / password and a
        new certificate for it; the previous certificate of that kind is revoked as superseded.
        The way out of a forgotten or locked PIN (the old key is sealed under the old PIN and
        cannot be recovered), and how a moved holder gets a new signature certificate."""
        kind = check_kind(kind)
        check_pin(kind, new_pin, "new_pin")
        state = self.state(holder_id)
        if kind == "sign" and state.card.sign_key is None:
            raise NotEligible(f"holder {state.holder.id}'s card has no signature key (holder under {MIN_SIGN_AGE})",
                              field="kind", allowed=["auth"])
        key = keys.generate_rsa()
        sealed = seal_key(key, new_pin, self._passphrase, state.holder.id, kind)
        # One unit of work: new certificate, every one it replaces revoked as superseded (the CA
        # finds them: not only the card's), and the card's new key.
        with self.authority.unit_of_work() as work:
            new = self.authority.issue_keys(work, state.holder.id, {kind: key.public_key()},
                                            replace=True)[0].certificate
            card = work.session.get_one(Card, state.card.id)
            setattr(card, f"{kind}_key", sealed)
            setattr(card, f"{kind}_cert_id", new.id)
            setattr(card, f"{kind}_tries", MAX_TRIES[kind])
            card.updated_at = self.clock.now()
        return self.state(state.holder.id)

    @audit.operation("card.renew", "holder {holder_id}")
    def renew(self, holder_id: Any, *, auth_pin: Any, sign_password: Any = None) -> CardState:
        """The renewal at the municipality, onto the card: new key pairs under the PINs the holder
        sets, certified, and every current certificate of the holder (valid or on hold) revoked as
        superseded, in one unit of work with the card's new keys [C: a renewal replaces the
        certificates; a hold is never released, a found card is renewed, docs/sources.md section 4].
        The way back for a lost card that was found, and for a card whose certificates were revoked
        or expired; a holder who turned 15 gets a signature key now."""
        state = self.state(holder_id)
        kinds = self._card_kinds(state.holder, auth_pin, sign_password)
        pins = {"sign": sign_password, "auth": auth_pin}
        private = {k: keys.generate_rsa() for k in kinds}  # generated on the card [C]
        sealed = {k: seal_key(private[k], pins[k], self._passphrase, state.holder.id, k) for k in kinds}
        with self.authority.unit_of_work() as work:
            _revoked, issued = self.authority.renew_keys(work, state.holder.id,
                                                         {k: private[k].public_key() for k in kinds})
            certs = {i.certificate.kind: i.certificate for i in issued}
            card = work.session.get_one(Card, state.card.id)
            card.sign_key, card.auth_key = sealed.get("sign"), sealed["auth"]
            card.sign_cert_id = certs["sign"].id if "sign" in certs else None
            card.auth_cert_id = certs["auth"].id
            card.sign_tries = MAX_TRIES["sign"] if "sign" in kinds else 0
            card.auth_tries = MAX_TRIES["auth"]
            card.updated_at = self.clock.now()
        return self.state(state.holder.id)

    @audit.operation("card.unlock", "holder {holder_id} {kind}")
    def unlock(self, holder_id: Any, kind: Any) -> CardState:
        """Operator action: restore the try counter (the holder still knows the PIN)."""
        kind = check_kind(kind)
        state = self.state(holder_id)
        if kind == "sign" and state.card.sign_key is None:
            raise NotEligible("this card has no signature key", field="kind", allowed=["auth"])
        with self.store.session() as s:
            card = s.get_one(Card, state.card.id)
            setattr(card, f"{kind}_tries", MAX_TRIES[kind])
            card.updated_at = self.clock.now()
        return self.state(state.holder.id)

    # ------------------------------------------------------------------ reading
    def state(self, holder_id: Any) -> CardState:
        holder = self.authority.get_holder(holder_id)
        with self.store.session() as s:
            card = s.scalars(select(Card).where(Card.holder_id == holder.id)).first()
            if card is None:
                raise NotFound(f"holder {holder.id} has no card", field="holder",
                               allowed="create one with `jpki-mock card create`")
            certs = {k: s.get_one(Certificate, cid)
                     for k, cid in (("sign", card.sign_cert_id), ("auth", card.auth_cert_id)) if cid is not None}
        return CardState(holder, card, certs)

    def certificate(self, holder_id: Any, kind: Any, password: Any = None) -> Certificate:
        """The auth certificate reads freely; the signature certificate needs the password [C]."""
        kind = check_kind(kind)
        if kind == "sign":
            return self._open(holder_id, "sign", password)[1]
        state = self.state(holder_id)
        return state.certificates["auth"]

    def verify(self, holder_id: Any, kind: Any, pin: Any) -> tuple[rsa.RSAPrivateKey, Certificate]:
        """The card's VERIFY, as the virtual reader (kit/reader.py) sends it: the key the PIN
        opens and its certificate; a wrong PIN costs a try (:class:`WrongPin`), a locked one
        raises :class:`PinLocked`."""
        return self._open(holder_id, check_kind(kind), pin)

    def _open(self, holder_id: Any, kind: str, pin: Any) -> tuple[rsa.RSAPrivateKey, Certificate]:
        """VERIFY then use the key: a wrong PIN costs a try, the right one restores the count."""
        state = self.state(holder_id)
        if kind == "sign" and state.card.sign_key is None:
            raise NotEligible(f"holder {state.holder.id}'s card has no signature key (no signature certificate "
                              f"under {MIN_SIGN_AGE})", field="kind", allowed=["auth"])
        check_pin(kind, pin)
        failure = None
        key = None
        with self.store.session() as s:
            card = s.get_one(Card, state.card.id, with_for_update=True)
            tries = getattr(card, f"{kind}_tries")
            if tries <= 0:
                raise PinLocked(f"the {PIN_NAMES[kind]} is locked after {MAX_TRIES[kind]} wrong tries",
                                field=PIN_FIELDS[kind], tries_left=0,
                                allowed="an operator unlocks it (`jpki-mock card unlock`) or resets it "
                                        "(`jpki-mock card reset`)")
            key = open_key(getattr(card, f"{kind}_key"), pin, self._passphrase, state.holder.id, kind)
            if key is None:
                tries -= 1
                failure = WrongPin(
                    f"wrong {PIN_NAMES[kind]}: {tries} of {MAX_TRIES[kind]} tries left"
                    + ("; it is now locked" if tries == 0 else ""),
                    field=PIN_FIELDS[kind], tries_left=tries)
            else:
                tries = MAX_TRIES[kind]
            if tries != getattr(card, f"{kind}_tries"):
                setattr(card, f"{kind}_tries", tries)
                card.updated_at = self.clock.now()
        if failure is not None:
            raise failure  # raised after the commit: the lost try is recorded
        assert key is not None  # a wrong PIN set failure above
        return key, state.certificates[kind]

    # ------------------------------------------------------------------ signing
    def sign(self, holder_id: Any, data: Any, password: Any, scheme: Any = "cms") -> tuple[bytes, Certificate]:
        """Sign ``data`` with the signature key: ``pkcs1`` (RSASSA-PKCS1-v1_5 SHA-256), ``pss``
        (RSASSA-PSS SHA-256, MGF1-SHA-256, 32-byte salt: RFC 8017 section 8.1) or ``cms``
        (a detached CMS SignedData, RFC 5652, as e-application systems receive)."""
        if scheme not in SCHEMES:
            raise InvalidInput(f"{scheme!r} is not a signature scheme", field="scheme", allowed=list(SCHEMES))
        check_bytes(data, "data", MAX_DATA)
        # The card signs whatever the certificate's status: telling a revoked one is the verifier's job.
        key, cert_row = self._open(holder_id, "sign", password)
        if scheme == "pkcs1":
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256()), cert_row
        if scheme == "pss":
            return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()), cert_row
        cert = x509.load_der_x509_certificate(self.authority.der_of(cert_row))
        issuer = self.authority.issuer_by_id(cert_row.ca_id)
        cms = (pkcs7.PKCS7SignatureBuilder().set_data(data)
               .add_signer(cert, key, hashes.SHA256())
               .add_certificate(issuer.certificate)
               .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
        return cms, cert_row

    def authenticate(self, holder_id: Any, challenge: Any, pin: Any) -> tuple[bytes, Certificate]:
        """Sign a service's login challenge with the user-authentication key (RSASSA-PKCS1-v1_5
        SHA-256): the service verifies it with the public key of the user-auth certificate."""
        check_bytes(challenge, "challenge", MAX_CHALLENGE)
        if not challenge:
            raise InvalidInput("is empty", field="challenge", allowed=f"1-{MAX_CHALLENGE} bytes")
        key, cert_row = self._open(holder_id, "auth", pin)
        return key.sign(challenge, padding.PKCS1v15(), hashes.SHA256()), cert_row

    @audit.operation("card.export", "holder {holder_id} {kind}")
    def export_pkcs12(self, holder_id: Any, kind: Any, pin: Any, passphrase: Any = None) -> bytes:
        """One key with its certificate and CA certificate as PKCS#12, encrypted (AES-256) with
        ``passphrase`` (default: the PIN / password itself), for tools that cannot talk to the card."""
        kind = check_kind(kind)
        check_pin(kind, pin)
        if passphrase is None:
            passphrase = pin
        if not isinstance(passphrase, str) or not 4 <= len(passphrase) <= 128:
            raise InvalidInput("must be a string of 4-128 characters", field="pkcs12_passphrase")
        key, cert_row = self._open(holder_id, kind, pin)
        issuer = self.authority.issuer_by_id(cert_row.ca_id)
        return pkcs12.serialize_key_and_certificates(
            f"{kind}-{cert_row.serial}".encode(), key, x509.load_der_x509_certificate(self.authority.der_of(cert_row)),
            [issuer.certificate], serialization.BestAvailableEncryption(passphrase.encode()),
        )


def check_bytes(value: Any, field: str, limit: int) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidInput("must be bytes", field=field)
    if len(value) > limit:
        raise InvalidInput(f"is {len(value)} bytes", field=field, allowed=f"at most {limit} bytes")
    return value


def custody(s: Session, holder_id: int) -> str | None:
    """The CA's :data:`jpki_mock.ca.issuance.KeyCustody` for the software card: a holder with a card
    gets certificates only for keys made on it, so the card always holds the current ones."""
    if s.scalars(select(Card.id).where(Card.holder_id == holder_id)).first() is None:
        return None
    return (f"certificates go onto the card: `jpki-mock card renew {holder_id}` (renewal, a found or "
            f"re-issued card) or `jpki-mock card reset {holder_id} --kind sign|auth` (one key), "
            f"POST /admin/api/holders/{holder_id}/card/renew or .../card/reset")


def age_today(holder: Holder, now: datetime) -> int:
    return b4.age_on(b4.decode_dob(holder.date_of_birth), now.astimezone(JST).date())
