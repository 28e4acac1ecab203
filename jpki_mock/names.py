"""Distinguished names of the JPKI hierarchy, with the real string types and RDN order.

The real roots (tests/vectors/, docs/sources.md section 2) encode C as PrintableString and every other
attribute as UTF8String, one attribute per RDN, in the order C, O, OU, OU.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from jpki_mock import vocab
from jpki_mock.municipalities import Municipality

AGENCY_EN = "Japan Agency for Local Authority Information Systems"
AGENCY_JA = "地方公共団体情報システム機構"
SERVICE_JA = "公的個人認証サービス"

KIND_OU = {"sign": "JPKI for digital signature", "auth": "JPKI for user authentication"}
KIND_OU_JA = {"sign": "公的個人認証サービス署名用", "auth": "公的個人認証サービス利用者証明用"}
ORG = {"production": "JPKI", "test": "JPKI-TEST"}

KINDS = vocab.KINDS


def _attr(oid: x509.ObjectIdentifier, value: str) -> x509.RelativeDistinguishedName:
    if oid == NameOID.COUNTRY_NAME:
        attr = x509.NameAttribute(oid, value, _type=_ASN1Type.PrintableString)
    else:
        attr = x509.NameAttribute(oid, value, _type=_ASN1Type.UTF8String)
    return x509.RelativeDistinguishedName([attr])


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([_attr(oid, value) for oid, value in pairs])


def ca_name(kind: str, hierarchy: str = "production") -> x509.Name:
    """``C=JP, O=JPKI, OU=JPKI for digital signature, OU=Japan Agency ...`` (same DN for every generation)."""
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, ORG[hierarchy]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, KIND_OU[kind]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, AGENCY_EN),
    )


def ca_japanese_name(kind: str) -> x509.Name:
    """The Japanese directoryName in the root's subjectAltName and in every EE issuerAltName."""
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, SERVICE_JA),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, KIND_OU_JA[kind]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, AGENCY_JA),
    )


def crldp_name(kind: str, municipality: Municipality, hierarchy: str = "production") -> x509.Name:
    """Per-municipality CRL partition name [S]:
    ``C=JP, O=JPKI, OU=JPKI for digital signature, OU=CRL Distribution Points, OU=<pref>, CN=<muni> CRLDP``."""
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, ORG[hierarchy]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, KIND_OU[kind]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "CRL Distribution Points"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, municipality.prefecture_en),
        (NameOID.COMMON_NAME, f"{municipality.name_en} CRLDP"),
    )


def sign_subject(municipality: Municipality, cn: str) -> x509.Name:
    """``C=JP, L=<prefecture>, L=<municipality>, CN=<id>`` [S]."""
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.LOCALITY_NAME, municipality.prefecture_en),
        (NameOID.LOCALITY_NAME, municipality.name_en),
        (NameOID.COMMON_NAME, cn),
    )


def auth_subject(cn: str) -> x509.Name:
    """``C=JP, CN=<opaque id>`` [S]: the user-auth certificate carries no personal data."""
    return _name((NameOID.COUNTRY_NAME, "JP"), (NameOID.COMMON_NAME, cn))


def responder_name(kind: str, generation: int, hierarchy: str = "production") -> x509.Name:
    """Our delegated OCSP responder's subject; the real one is not public [U]."""
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, ORG[hierarchy]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, KIND_OU[kind]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, AGENCY_EN),
        (NameOID.COMMON_NAME, f"OCSP Responder G{generation}"),
    )
