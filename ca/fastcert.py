"""Fast end-entity certificate encoding for bulk seeding.

Signing (RSA-2048, ~1.1 ms on one core of this machine) should be nearly the only cost of a
seeded certificate, but cryptography's CertificateBuilder adds about as much again building
Python objects.  Here the
parts that do not change between certificates of one (CA generation, kind, municipality)
are taken once from a certificate built by :func:`ca.profile.ee_certificate_builder` itself,
and only serial, validity, subject CN, subjectAltName and SKI are encoded per certificate.
PKCS#1 v1.5 signatures are deterministic, so the result is byte-for-byte what the builder
produces for the same inputs (tests/ca/test_fastcert.py checks exactly that).
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable
from datetime import datetime, timedelta

from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_mock import der, names
from jpki_mock.ca import oids, profile
from jpki_mock.ca.basic4 import Basic4
from jpki_mock.ca.signer import SHA256_RSA_ALGORITHM
from jpki_mock.clock import UTC
from jpki_mock.der import integer, tlv, x509_time
from jpki_mock.municipalities import Municipality
from jpki_mock.vocab import Kind

SAN_OID, SKI_OID = "2.5.29.17", "2.5.29.14"
_V3 = tlv(0xA0, integer(2))
_CN_OID = der.oid("2.5.4.3")
# Extension{extnID 2.5.29.14, extnValue OCTET STRING {KeyIdentifier OCTET STRING (20)}}: only the
# SHA-1 changes (RFC 5280 section 4.2.1.2 method 1), so the 11 octets before it are constant.
_SKI_PREFIX = bytes.fromhex("301d0603551d0e04160414")
_SAN_EXTN_ID = der.oid(SAN_OID)


class Template:
    """Constant DER parts for one (issuer generation, kind, municipality)."""

    def __init__(self, kind: str, issuer: profile.IssuerInfo, municipality: Municipality, prof: profile.EEProfile):
        dummy_key = _dummy_public_key()
        b4 = Basic4("x\u3000y", "319801231", "1", municipality.address_prefix, "000",
                    "0" * len(municipality.address_prefix), municipality.code) if kind == Kind.SIGN else None
        subject = names.sign_subject(municipality, "CN") if kind == Kind.SIGN else names.auth_subject("CN")
        # Only the TBS parts are kept, so a throwaway key signs the template (no CA key needed).
        cert = ax509.Certificate.load(profile.ee_certificate_builder(
            kind=kind, serial=1, subject=subject, public_key=dummy_key, not_before=_EPOCH,
            not_after=_EPOCH + timedelta(days=1), issuer=issuer, municipality=municipality, profile=prof, basic4=b4,
        ).sign(_dummy_private_key(), hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        tbs = cert["tbs_certificate"]
        self.kind = kind
        # signature AlgorithmIdentifier and issuer Name follow the serial and never change.
        self.after_serial = SHA256_RSA_ALGORITHM + tbs["issuer"].dump()
        rdns = tbs["subject"].chosen
        # Subject: all RDNs but the last (CN) are constant; CN is UTF8String, one attribute per RDN.
        self.subject_prefix = b"".join(rdn.dump() for rdn in list(rdns)[:-1])
        # Extensions in the builder's order: constant runs of DER between the SAN and SKI slots.
        self.ext_parts: list[bytes | str] = []
        for ext in tbs["extensions"]:
            oid = ext["extn_id"].dotted
            if oid in (SAN_OID, SKI_OID):
                self.ext_parts.append(oid)
            elif self.ext_parts and isinstance(self.ext_parts[-1], bytes):
                self.ext_parts[-1] += ext.dump()
            else:
                self.ext_parts.append(ext.dump())

    def tbs(self, *, serial: int, not_before: datetime, not_after: datetime, cn: str, spki_der: bytes,
            key_bits: bytes, basic4: Basic4 | None) -> bytes:
        subject = tlv(0x30, self.subject_prefix + tlv(0x31, tlv(0x30, _CN_OID + tlv(0x0C, cn.encode()))))
        exts: list[bytes] = []
        for part in self.ext_parts:
            if isinstance(part, bytes):
                exts.append(part)
            elif part == SAN_OID:
                exts.append(_san_ext(basic4))
            else:  # SKI_OID
                exts.append(_SKI_PREFIX + hashlib.sha1(key_bits).digest())
        body = (_V3 + integer(serial) + self.after_serial
                + tlv(0x30, x509_time(not_before) + x509_time(not_after)) + subject + spki_der
                + tlv(0xA3, tlv(0x30, b"".join(exts))))
        return tlv(0x30, body)


def _san_ext(b4: Basic4 | None) -> bytes:
    """subjectAltName: the six otherNames in the real order (docs/sources.md section 3), each
    [0] { type-id, [0] EXPLICIT UTF8String }."""
    assert b4 is not None
    names_der = b"".join(tlv(0xA0, oid + tlv(0xA0, tlv(0x0C, value.encode())))
                         for oid, value in zip(_SAN_OIDS, _san_values(b4), strict=True))
    return tlv(0x30, _SAN_EXTN_ID + tlv(0x04, tlv(0x30, names_der)))


_SAN_FIELD = {oids.NAME: "name", oids.DATE_OF_BIRTH: "date_of_birth", oids.GENDER: "gender",
              oids.ADDRESS: "address", oids.NAME_FLAGS: "name_flags", oids.ADDRESS_FLAGS: "address_flags"}
_san_values = operator.attrgetter(*(_SAN_FIELD[oid] for oid in oids.SAN_ORDER))
_SAN_OIDS = tuple(der.oid(oid.dotted_string) for oid in oids.SAN_ORDER)
_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
_DUMMY: list[rsa.RSAPrivateKey] = []


def _dummy_private_key() -> rsa.RSAPrivateKey:
    if not _DUMMY:
        _DUMMY.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _DUMMY[0]


def _dummy_public_key() -> rsa.RSAPublicKey:
    return _dummy_private_key().public_key()


class FastSigner:
    """Encodes certificates from templates and has ``sign`` sign them; one per process.

    ``sign``: sha256WithRSAEncryption over the TBS bytes, as :meth:`ca.signer.CASigner.sign`
    does (seeding workers get theirs from :meth:`ca.signer.SealedSigner.open`)."""

    def __init__(self, sign: Callable[[bytes], bytes], issuer: profile.IssuerInfo, prof: profile.EEProfile):
        self._sign = sign
        self.issuer = issuer
        self.profile = prof
        self._templates: dict[tuple[str, str], Template] = {}

    def template(self, kind: str, municipality: Municipality) -> Template:
        t = self._templates.get((kind, municipality.code))
        if t is None:
            t = self._templates[(kind, municipality.code)] = Template(kind, self.issuer, municipality, self.profile)
        return t

    def certificate(self, *, kind: str, municipality: Municipality, serial: int, not_before: datetime,
                    not_after: datetime, cn: str, spki_der: bytes, key_bits: bytes, basic4: Basic4 | None) -> bytes:
        tbs = self.template(kind, municipality).tbs(serial=serial, not_before=not_before, not_after=not_after, cn=cn,
                                                    spki_der=spki_der, key_bits=key_bits, basic4=basic4)
        signature = self._sign(tbs)
        return tlv(0x30, tbs + SHA256_RSA_ALGORITHM + tlv(0x03, b"\x00" + signature))
