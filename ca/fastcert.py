"""Fast end-entity certificate encoding for bulk seeding.

Signing (RSA-2048, ~0.3 ms) should be the only real cost of a seeded certificate, but
cryptography's CertificateBuilder spends as long again building Python objects.  Here the
parts that do not change between certificates of one (CA generation, kind, municipality)
are taken once from a certificate built by :func:`ca.profile.build_ee_certificate` itself,
and only serial, validity, subject CN, subjectAltName and SKI are encoded per certificate.
PKCS#1 v1.5 signatures are deterministic, so the result is byte-for-byte what the builder
produces for the same inputs (tests/ca/test_fastcert.py checks exactly that).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import names, profile
from .basic4 import Basic4
from .municipalities import Municipality
from .signer import SHA256_RSA_ALGORITHM

SAN_OID, SKI_OID = "2.5.29.17", "2.5.29.14"


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
    return tlv(0x02, body)


def der_time(dt: datetime) -> bytes:
    """RFC 5280 section 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    if dt.year < 2050:
        return tlv(0x17, dt.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(0x18, dt.strftime("%Y%m%d%H%M%SZ").encode())


def utf8(value: str) -> bytes:
    return tlv(0x0C, value.encode())


class Template:
    """Constant DER parts for one (issuer generation, kind, municipality)."""

    def __init__(self, kind: str, issuer: profile.IssuerInfo, municipality: Municipality, prof: profile.EEProfile):
        dummy_key = _dummy_public_key()
        b4 = Basic4("x\u3000y", "319801231", "1", municipality.address_prefix, "000", "0" * len(municipality.address_prefix),
                    municipality.code) if kind == "sign" else None
        subject = names.sign_subject(municipality, "CN") if kind == "sign" else names.auth_subject("CN")
        cert = ax509.Certificate.load(profile.build_ee_certificate(
            kind=kind, serial=1, subject=subject, public_key=dummy_key, not_before=_EPOCH, not_after=_EPOCH + timedelta(days=1),
            issuer=issuer, issuer_key=_dummy_private_key(), municipality=municipality, profile=prof, basic4=b4,
        ).public_bytes(serialization.Encoding.DER))
        tbs = cert["tbs_certificate"]
        self.kind = kind
        self.version = tlv(0xA0, der_int(2))  # v3
        self.sig_alg = SHA256_RSA_ALGORITHM
        self.issuer = tbs["issuer"].dump()
        rdns = tbs["subject"].chosen
        # Subject: all RDNs but the last (CN) are constant; CN is UTF8String, one attribute per RDN.
        self.subject_prefix = b"".join(rdn.dump() for rdn in list(rdns)[:-1])
        self.cn_oid = bytes.fromhex("0603550403")
        self.ext_parts: list[bytes | str] = []
        for ext in tbs["extensions"]:
            oid = ext["extn_id"].dotted
            self.ext_parts.append(oid if oid in (SAN_OID, SKI_OID) else ext.dump())

    def tbs(self, *, serial: int, not_before: datetime, not_after: datetime, cn: str, spki_der: bytes,
            key_bits: bytes, basic4: Basic4 | None) -> bytes:
        cn_rdn = tlv(0x31, tlv(0x30, self.cn_oid + utf8(cn)))
        subject = tlv(0x30, self.subject_prefix + cn_rdn)
        exts = []
        for part in self.ext_parts:
            if part == SAN_OID:
                exts.append(_san_ext(basic4))
            elif part == SKI_OID:
                ski = tlv(0x04, hashlib.sha1(key_bits).digest())
                exts.append(tlv(0x30, tlv(0x06, bytes.fromhex("551d0e")) + tlv(0x04, ski)))
            else:
                exts.append(part)
        body = (self.version + der_int(serial) + self.sig_alg + self.issuer
                + tlv(0x30, der_time(not_before) + der_time(not_after)) + subject + spki_der
                + tlv(0xA3, tlv(0x30, b"".join(exts))))
        return tlv(0x30, body)


def _san_ext(b4: Basic4 | None) -> bytes:
    assert b4 is not None
    from . import oids

    values = {oids.NAME: b4.name, oids.DATE_OF_BIRTH: b4.date_of_birth, oids.GENDER: b4.gender,
              oids.ADDRESS: b4.address, oids.NAME_FLAGS: b4.name_flags, oids.ADDRESS_FLAGS: b4.address_flags}
    names_der = b"".join(
        tlv(0xA0, _OID_DER[oid] + tlv(0xA0, utf8(values[oid]))) for oid in oids.SAN_ORDER
    )
    return tlv(0x30, tlv(0x06, bytes.fromhex("551d11")) + tlv(0x04, tlv(0x30, names_der)))


def _oid_der(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def _build_oid_table():
    from . import oids

    return {oid: _oid_der(oid.dotted_string) for oid in oids.SAN_ORDER}


_OID_DER = _build_oid_table()
_EPOCH = datetime(2030, 1, 1, tzinfo=profile.UTC)
_DUMMY: list = []


def _dummy_private_key() -> rsa.RSAPrivateKey:
    if not _DUMMY:
        _DUMMY.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _DUMMY[0]


def _dummy_public_key() -> rsa.RSAPublicKey:
    return _dummy_private_key().public_key()


class FastSigner:
    """Encodes and signs certificates from templates; one per process."""

    def __init__(self, issuer_key: rsa.RSAPrivateKey, issuer: profile.IssuerInfo, prof: profile.EEProfile):
        self.key = issuer_key
        self.issuer = issuer
        self.profile = prof
        self._templates: dict[tuple[str, str], Template] = {}
        self._pad, self._hash = padding.PKCS1v15(), hashes.SHA256()

    def template(self, kind: str, municipality: Municipality) -> Template:
        t = self._templates.get((kind, municipality.code))
        if t is None:
            t = self._templates[(kind, municipality.code)] = Template(kind, self.issuer, municipality, self.profile)
        return t

    def certificate(self, *, kind: str, municipality: Municipality, serial: int, not_before: datetime,
                    not_after: datetime, cn: str, spki_der: bytes, key_bits: bytes, basic4: Basic4 | None) -> bytes:
        tbs = self.template(kind, municipality).tbs(serial=serial, not_before=not_before, not_after=not_after, cn=cn,
                                                    spki_der=spki_der, key_bits=key_bits, basic4=basic4)
        signature = self.key.sign(tbs, self._pad, self._hash)
        return tlv(0x30, tbs + SHA256_RSA_ALGORITHM + tlv(0x03, b"\x00" + signature))
