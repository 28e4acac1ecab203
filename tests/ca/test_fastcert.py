"""The seeding fast path produces byte-for-byte the certificate the profile builder produces."""

from datetime import datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki_mock import municipalities, names
from jpki_mock.ca import fastcert, keys, profile
from jpki_mock.ca.basic4 import Basic4
from jpki_mock.ca.issuers import key_bits
from jpki_mock.clock import UTC


@pytest.mark.parametrize("kind", ["sign", "auth"])
@pytest.mark.parametrize("not_after", [datetime(2031, 3, 15, 14, 59, 59, tzinfo=UTC),
                                       datetime(2051, 1, 2, 14, 59, 59, tzinfo=UTC)])
@pytest.mark.parametrize("faithful", [False, True])
def test_fast_path_equals_builder(kind, not_after, faithful):
    ca_key = keys.generate_rsa()
    issuer = profile.IssuerInfo(kind, 2, names.ca_name(kind), b"\x11" * 20)
    prof = profile.EEProfile("production", faithful, "http://127.0.0.1:8080")
    muni = municipalities.get("27100")
    sub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    address = "大阪府大阪市北区梅田" + "一" * 150  # long enough for multi-byte DER lengths
    b4 = Basic4("佐藤\u3000花子", "420000229", "2", address, "00000", "0" * len(address), "27100") \
        if kind == "sign" else None
    nb = datetime(2026, 11, 26, 3, 0, 0, tzinfo=UTC)
    cn = "2026112612000000012327100" if kind == "sign" else "ABCDEFGHIJKLMNOPQRSTUVW"
    subject = names.sign_subject(muni, cn) if kind == "sign" else names.auth_subject(cn)
    serial = 2**40 + 255  # a leading 0x00 is not needed; 2**63-1 boundaries are covered below
    expected = profile.ee_certificate_builder(
        kind=kind, serial=serial, subject=subject, public_key=sub, not_before=nb, not_after=not_after, issuer=issuer,
        municipality=muni, profile=prof, basic4=b4,
    ).sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    spki = sub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    signer = fastcert.FastSigner(lambda tbs: ca_key.sign(tbs, padding.PKCS1v15(), hashes.SHA256()), issuer, prof)
    fast = signer.certificate(
        kind=kind, municipality=muni, serial=serial, not_before=nb, not_after=not_after, cn=cn, spki_der=spki,
        key_bits=key_bits(expected), basic4=b4)
    assert fast == expected
