"""Signing without handing out keys: the interface ``crl/`` and ``ocsp/`` use.

A :class:`Keyring` decrypts CA keys on first use and gives out :class:`CASigner` (signs CRL
TBS bytes, certificates and CRLs built with pyca/cryptography) and :class:`ResponderSigner`
(signs OCSP ResponseData) objects.  Neither exposes the private key.  Delegated responder
certificates are issued and renewed here, because issuing needs the CA key.

This module (with :func:`ca.keys.decrypt_key`, which it calls) is the only code that decrypts
a CA key: the authority signs certificates with :meth:`Keyring.sign_certificate`, and bulk
seeding hands its worker processes a :class:`SealedSigner` that opens into a
:class:`CASigner` in the worker.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select

from jpki_mock.ca import keys, profile
from jpki_mock.ca.issuers import Issuer, key_bits
from jpki_mock.ca.models import CAGeneration, ResponderCert
from jpki_mock.clock import Clock
from jpki_mock.config import Config
from jpki_mock.db import Store, next_values
from jpki_mock.errors import UnknownIssuer

#: DER of AlgorithmIdentifier sha256WithRSAEncryption with NULL parameters (RFC 4055 section 5).
SHA256_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d01010b0500")
RESPONDER_SERIALS = "responder_serial"
#: Responder certificates share the issuer DN with the CA certificates (serials 1, 2, ...) and
#: the end-entity certificates (1000001, ...): a separate range keeps (issuer, serial) unique
#: (RFC 5280 section 4.1.2.2).  A collision made pyhanko-certvalidator take the responder
#: certificate for the CA certificate itself and reject every delegated response.
RESPONDER_SERIAL_START = 9_000_000_001


class CASigner:
    """Signs bytes with one CA generation's key (sha256WithRSAEncryption, PKCS#1 v1.5)."""

    algorithm_der = SHA256_RSA_ALGORITHM

    def __init__(self, issuer: Issuer, key: rsa.RSAPrivateKey):
        self.issuer = issuer
        self.__key = key

    def sign(self, data: bytes) -> bytes:
        return self.__key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def sign_prehashed(self, sha256_digest: bytes) -> bytes:
        """The same signature as :meth:`sign`, given SHA-256(data): lets a CRL writer hash a TBS it
        streams from disk instead of holding it in memory (PKCS#1 v1.5 signs DigestInfo(hash))."""
        return self.__key.sign(sha256_digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """``builder`` signed by this CA generation (sha256WithRSAEncryption)."""
        return builder.sign(self.__key, hashes.SHA256())

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        """A CRL built with pyca/cryptography, signed by this CA generation (the CRL benchmark's
        reference path; ``crl/`` streams its own TBS through :meth:`sign_prehashed`)."""
        return builder.sign(self.__key, hashes.SHA256())

    def __repr__(self) -> str:
        return f"<CASigner {self.issuer.label}>"


@dataclass(frozen=True)
class SealedSigner:
    """A CA generation's signer as a picklable value for a worker process: the certificate row and
    the key still encrypted.  :meth:`open` decrypts it in the worker; nothing else reads the key."""

    id: int
    kind: str
    generation: int
    hierarchy: str
    cert_der: bytes
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None
    reason: int | None
    _key_pkcs8: bytes = field(repr=False)
    _passphrase: str = field(repr=False)

    @classmethod
    def of(cls, row: CAGeneration, passphrase: str) -> SealedSigner:
        return cls(row.id, row.kind, row.generation, row.hierarchy, bytes(row.cert_der), row.not_before,
                   row.not_after, row.revoked_at, row.reason, bytes(row.key_pkcs8), passphrase)

    def open(self) -> CASigner:
        # Issuer.from_row reads the same column names a CAGeneration row has.
        return CASigner(Issuer.from_row(self), keys.decrypt_key(self._key_pkcs8, self._passphrase))


@dataclass(frozen=True)
class ResponderSigner:
    """Signs OCSP ResponseData for one issuer: with a delegated responder certificate, or the CA key.

    ``certificate_der`` is what goes into BasicOCSPResponse.certs (empty when the CA signs
    itself); ``key_hash`` is the ResponderID byKey value: SHA-1 of the signer's subjectPublicKey
    BIT STRING (RFC 6960 section 4.2.1), not its SKI extension."""

    issuer: Issuer
    certificate: x509.Certificate
    certificate_der: bytes
    delegated: bool
    key_hash: bytes
    _sign: Callable[[bytes], bytes] = field(repr=False)
    #: when :meth:`Keyring.responder_signer` replaces this delegated signer (its notAfter minus
    #: ``ocsp.responder_renew_days``); None when the CA key signs (nothing to renew).
    renew_at: datetime | None = None

    algorithm_der = SHA256_RSA_ALGORITHM

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def sign(self, data: bytes) -> bytes:
        return self._sign(data)


class Keyring:
    """Per-process holder of decrypted CA keys. Thread-safe."""

    def __init__(self, store: Store, config: Config, clock: Clock):
        self.store = store
        self.config = config
        self.clock = clock
        self._lock = threading.RLock()
        self._ca: dict[int, CASigner] = {}
        self._responders: dict[int, ResponderSigner] = {}

    def _row(self, issuer_id: int) -> CAGeneration:
        with self.store.session() as s:
            row = s.get(CAGeneration, issuer_id)
            if row is None:
                raise UnknownIssuer(f"no CA generation with id {issuer_id}", field="issuer")
            return row

    def ca_signer(self, issuer_id: int) -> CASigner:
        with self._lock:
            signer = self._ca.get(issuer_id)
            if signer is None:
                signer = self.sealed_signer(issuer_id).open()
                self._ca[issuer_id] = signer
            return signer

    def sealed_signer(self, issuer_id: int) -> SealedSigner:
        """What a worker process needs to rebuild ``issuer_id``'s signer (:meth:`SealedSigner.open`)."""
        return SealedSigner.of(self._row(issuer_id), self.config.key_passphrase)

    def sign_certificate(self, builder: x509.CertificateBuilder, issuer_id: int) -> x509.Certificate:
        """``builder`` signed with CA generation ``issuer_id``'s key."""
        return self.ca_signer(issuer_id).sign_certificate(builder)

    def responder_signer(self, issuer_id: int) -> ResponderSigner:
        """The signer for OCSP responses about ``issuer_id``'s certificates; a delegated responder
        certificate is issued, or replaced once it is within ``ocsp.responder_renew_days`` of expiry."""
        now = self.clock.now()
        # Every live-signed OCSP answer comes through here: the common case is one dict read
        # (atomic under the GIL) and one comparison, without the lock.
        cached = self._responders.get(issuer_id)
        if cached is not None and (cached.renew_at is None or now < cached.renew_at):
            return cached
        with self._lock:
            cached = self._responders.get(issuer_id)
            renew_at = now + timedelta(days=self.config.ocsp.responder_renew_days)
            if cached is not None and (not cached.delegated or cached.not_after > renew_at):
                return cached
            ca = self.ca_signer(issuer_id)
            if self.config.ocsp.signing == "ca":
                signer = ResponderSigner(
                    issuer=ca.issuer, certificate=ca.issuer.certificate, certificate_der=b"", delegated=False,
                    key_hash=hashlib.sha1(ca.issuer.key_bits).digest(), _sign=ca.sign,
                )
            else:
                signer = self._delegated(ca, now, renew_at)
            self._responders[issuer_id] = signer
            return signer

    def _delegated(self, ca: CASigner, now: datetime, renew_at: datetime) -> ResponderSigner:
        passphrase = self.config.key_passphrase
        with self.store.session() as s:
            row = s.scalars(
                select(ResponderCert)
                .where(ResponderCert.ca_id == ca.issuer.id, ResponderCert.not_after > renew_at,
                       ResponderCert.not_before <= now)
                .order_by(ResponderCert.not_after.desc()).limit(1)
            ).first()
            if row is None:
                key = keys.generate_rsa()
                serial = next_values(s, RESPONDER_SERIALS, start=RESPONDER_SERIAL_START)
                # Backdated like the responses it signs, so a client whose clock is behind still accepts it.
                not_before = now - timedelta(seconds=self.config.ocsp.backdate_seconds)
                cert = ca.sign_certificate(profile.responder_certificate_builder(
                    kind=ca.issuer.kind, generation=ca.issuer.generation, hierarchy=ca.issuer.hierarchy,
                    serial=serial, public_key=key.public_key(), not_before=not_before,
                    not_after=now + timedelta(days=self.config.ocsp.responder_cert_days), issuer=ca.issuer.info,
                ))
                row = ResponderCert(
                    ca_id=ca.issuer.id, serial=serial, cert_der=cert.public_bytes(Encoding.DER),
                    key_pkcs8=keys.encrypt_key(key, passphrase), not_before=cert.not_valid_before_utc,
                    not_after=cert.not_valid_after_utc, created_at=now,
                )
                s.add(row)
            else:
                key = keys.decrypt_key(row.key_pkcs8, passphrase)
            der = bytes(row.cert_der)
        cert = x509.load_der_x509_certificate(der)
        # Bound once: every live-signed OCSP response calls this.
        pad, digest = padding.PKCS1v15(), hashes.SHA256()

        def sign(data: bytes) -> bytes:
            return key.sign(data, pad, digest)

        return ResponderSigner(
            issuer=ca.issuer, certificate=cert, certificate_der=der, delegated=True,
            key_hash=hashlib.sha1(key_bits(der)).digest(), _sign=sign,
            renew_at=cert.not_valid_after_utc - timedelta(days=self.config.ocsp.responder_renew_days),
        )

    def write_peer_responder(self, issuer_id: int, directory: str | os.PathLike[str], days: int = 1
                             ) -> tuple[Path, Path]:
        """Issue a delegated responder certificate for *another* OCSP responder and write it, with
        its new key, as ``responder-<label>.pem`` / ``responder-<label>.key`` (PEM, key unencrypted,
        mode 0600) in ``directory``.

        For benchmark peers such as ``openssl ocsp -rsigner/-rkey`` that must answer for the same
        CA as this responder: the CA key never leaves ``ca/``, only this short-lived, OCSP-only
        certificate's key does (RFC 6960 section 4.2.2.2).  It is not recorded as this responder's
        own signer, and its serial comes from the same counter, so it never collides with one."""
        ca = self.ca_signer(issuer_id)
        now = self.clock.now()
        key = keys.generate_rsa()
        with self.store.session() as s:
            serial = next_values(s, RESPONDER_SERIALS, start=RESPONDER_SERIAL_START)
        cert = ca.sign_certificate(profile.responder_certificate_builder(
            kind=ca.issuer.kind, generation=ca.issuer.generation, hierarchy=ca.issuer.hierarchy,
            serial=serial, public_key=key.public_key(),
            not_before=now - timedelta(seconds=self.config.ocsp.backdate_seconds),
            not_after=now + timedelta(days=days), issuer=ca.issuer.info,
        ))
        folder = Path(directory)
        cert_path = folder / f"responder-{ca.issuer.label}.pem"
        key_path = folder / f"responder-{ca.issuer.label}.key"
        cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return cert_path, key_path

    def forget(self) -> None:
        """Drop cached signers (after a rollover or a configuration change)."""
        with self._lock:
            self._ca.clear()
            self._responders.clear()
