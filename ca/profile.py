"""Certificate profiles: the two JPKI roots and the two end-entity kinds (docs/sources.md sections 2-3).

Extension order and criticality are part of the profile: the roots' order is confirmed
from the real certificates [C]; the end-entity order follows published dumps [S] with
SKI last.  docs/profile.md lists every field with its source.
"""

from __future__ import annotations

import random
import secrets
import string
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from jpki_mock import names, urls
from jpki_mock.ca import oids
from jpki_mock.ca.basic4 import Basic4
from jpki_mock.clock import JST, UTC
from jpki_mock.municipalities import Municipality
from jpki_mock.vocab import Kind

CA_YEARS = 10


def jst_end_of_day(day: date) -> datetime:
    """23:59:59 JST of ``day`` = 14:59:59Z, the real notAfter convention."""
    return datetime.combine(day, time(14, 59, 59), tzinfo=UTC)


def ca_validity(now: datetime) -> tuple[datetime, datetime]:
    """10 years ending the day before the 10th anniversary (JST) at 23:59:59 JST, as the real roots:
    notBefore 2023-07-16 00:50:27Z -> notAfter 2033-07-15 14:59:59Z."""
    start_jst = now.astimezone(JST).date()
    try:
        anniversary = start_jst.replace(year=start_jst.year + CA_YEARS)
    except ValueError:  # 29 February
        anniversary = date(start_jst.year + CA_YEARS, 3, 1)
    return now, jst_end_of_day(anniversary - timedelta(days=1))


def _key_usage(*, digital_signature: bool = False, content_commitment: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=content_commitment, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=crl_sign,
        encipher_only=False, decipher_only=False,
    )


def build_ca_certificate(
    kind: str, hierarchy: str, key: rsa.RSAPrivateKey, serial: int, now: datetime
) -> x509.Certificate:
    """A self-signed JPKI root: same DN for every generation, extensions in the real DER order."""
    name = names.ca_name(kind, hierarchy)
    not_before, not_after = ca_validity(now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(names.ca_japanese_name(kind))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # The roots' CRLDP is their own DN with no URI: the ARL is fetched by directory name [C].
        .add_extension(
            x509.CRLDistributionPoints([x509.DistributionPoint([x509.DirectoryName(name)], None, None, None)]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def utf8(value: str) -> bytes:
    encoded: bytes = core.UTF8String(value).dump()  # asn1crypto is unannotated: dump() is bytes
    return encoded


def basic4_san(b4: Basic4) -> x509.SubjectAlternativeName:
    """Six otherNames with UTF8String values, in the real order [C]."""
    values = {
        oids.NAME: b4.name,
        oids.DATE_OF_BIRTH: b4.date_of_birth,
        oids.GENDER: b4.gender,
        oids.ADDRESS: b4.address,
        oids.NAME_FLAGS: b4.name_flags,
        oids.ADDRESS_FLAGS: b4.address_flags,
    }
    return x509.SubjectAlternativeName([x509.OtherName(oid, utf8(values[oid])) for oid in oids.SAN_ORDER])


@dataclass(frozen=True)
class EEProfile:
    """What varies between deployments: hierarchy, faithful mode and the public base URL."""

    hierarchy: str = "production"
    faithful: bool = False
    base_url: str = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class IssuerInfo:
    """The issuing generation, as the profile needs it (no key here)."""

    kind: str
    generation: int
    name: x509.Name
    ski: bytes


def ee_extensions(
    kind: str, issuer: IssuerInfo, municipality: Municipality, public_key: rsa.RSAPublicKey,
    profile: EEProfile, basic4: Basic4 | None,
) -> list[tuple[x509.ExtensionType, bool]]:
    exts: list[tuple[x509.ExtensionType, bool]] = []
    if kind == Kind.SIGN:
        exts.append((_key_usage(digital_signature=True, content_commitment=True), True))
    else:
        exts.append((_key_usage(digital_signature=True), True))
    policy = oids.POLICY[(profile.hierarchy, kind)]
    exts.append((x509.CertificatePolicies([x509.PolicyInformation(policy, [urls.cps_url(profile.base_url)])]), True))
    if kind == Kind.SIGN:
        assert basic4 is not None
        exts.append((basic4_san(basic4), False))
    exts.append((x509.IssuerAlternativeName([x509.DirectoryName(names.ca_japanese_name(kind))]), False))
    full_name: list[x509.GeneralName] = [x509.DirectoryName(names.crldp_name(kind, municipality, profile.hierarchy))]
    if not profile.faithful:
        # Standard clients cannot fetch from a directoryName: add the HTTP URI of the same partition.
        full_name.append(x509.UniformResourceIdentifier(
            urls.crl_url(profile.base_url, kind, issuer.generation, municipality.code)))
    exts.append((x509.CRLDistributionPoints([x509.DistributionPoint(full_name, None, None, None)]), False))
    if not profile.faithful:
        exts.append((x509.AuthorityInformationAccess([
            x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(urls.ocsp_url(profile.base_url)))
        ]), False))
    exts.append((x509.AuthorityKeyIdentifier(issuer.ski, None, None), False))
    exts.append((x509.SubjectKeyIdentifier.from_public_key(public_key), False))
    return exts


def ee_certificate_builder(
    *, kind: str, serial: int, subject: x509.Name, public_key: rsa.RSAPublicKey, not_before: datetime,
    not_after: datetime, issuer: IssuerInfo, municipality: Municipality, profile: EEProfile,
    basic4: Basic4 | None = None,
) -> x509.CertificateBuilder:
    """An end-entity certificate ready to sign (:meth:`ca.signer.Keyring.sign_certificate`)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext, critical in ee_extensions(kind, issuer, municipality, public_key, profile, basic4):
        builder = builder.add_extension(ext, critical=critical)
    return builder


def sign_cn(issued_at: datetime, serial: int, municipality: Municipality) -> str:
    """Issuance time (JST) + sequence + office code, the shape seen in real subjects [S]."""
    return f"{issued_at.astimezone(JST):%Y%m%d%H%M%S}{serial % 10**6:06d}{municipality.code}"


_ALNUM = string.ascii_uppercase + string.digits


def auth_cn(rng: random.Random | None = None) -> str:
    """An opaque 23-character identifier [S]: the user-auth certificate identifies the card, not the person.
    ``rng``: a ``random.Random`` for bulk seeding (reproducible, no system call per character)."""
    if rng is not None:
        return "".join(rng.choices(_ALNUM, k=23))
    return "".join(secrets.choice(_ALNUM) for _ in range(23))


def responder_certificate_builder(
    *, kind: str, generation: int, hierarchy: str, serial: int, public_key: rsa.RSAPublicKey,
    not_before: datetime, not_after: datetime, issuer: IssuerInfo,
) -> x509.CertificateBuilder:
    """Delegated OCSP responder (RFC 6960 section 4.2.2.2): EKU id-kp-OCSPSigning and
    id-pkix-ocsp-nocheck (section 4.2.2.2.1), short-lived instead of revocable."""
    return (
        x509.CertificateBuilder()
        .subject_name(names.responder_name(kind, generation, hierarchy))
        .issuer_name(issuer.name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier(issuer.ski, None, None), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
