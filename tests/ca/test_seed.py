"""Bulk seeding: real, verifiable certificates, the documented mix, the summary line, both databases."""

import subprocess
from collections import Counter

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.ca.seed import seed_holders


def test_seed_issues_real_certificates_with_a_mix(db_rt, tmp_path):
    result = seed_holders(db_rt, 400, workers=2, rng_seed=1, key_pool=4, progress=False)
    assert result.holders == 400 and result.certificates > 400
    with db_rt.store.session() as s:
        certs = s.scalars(select(Certificate)).all()
        holders = s.scalars(select(Holder)).all()
    assert len(certs) == result.certificates and len(holders) == 400
    assert len({(c.ca_id, c.serial) for c in certs}) == len(certs)
    reasons = Counter(c.reason for c in certs if c.status == "revoked")
    assert result.revoked == sum(reasons.values()) > 0
    assert 3 in reasons  # affiliationChanged dominates, as address changes do
    assert any(c.not_after < db_rt.clock.now() for c in certs)  # some expired
    assert Counter(h.municipality for h in holders).most_common(1)[0][1] < 400  # several municipalities
    # Minors (under 15) got no signature certificate.
    sign_holders = {c.holder_id for c in certs if c.kind == "sign"}
    assert len(sign_holders) < 400
    # Each certificate verifies under its CA and carries the holder's basic four.
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_text(db_rt.authority.issuer("sign").pem)
    at = db_rt.clock.now().timestamp() + 3600  # validation time: now (seeded notBefore may predate the CA)
    sample = [c for c in certs if c.kind == "sign" and c.not_after.timestamp() > at][:20]
    bundle = tmp_path / "ee.pem"
    for c in sample:
        bundle.write_bytes(x509.load_der_x509_certificate(c.der).public_bytes(serialization.Encoding.PEM))
        res = subprocess.run(["openssl", "verify", "-attime", str(int(at)), "-CAfile", str(ca_pem),
                              str(bundle)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        holder = next(h for h in holders if h.id == c.holder_id)
        extensions = x509.load_der_x509_certificate(c.der).extensions
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san[0].value[2:].decode() == holder.name
    # Revocations moved the shared revocation sequence so responders notice them.
    assert db_rt.status.current_seq() >= result.revoked and db_rt.epoch.read() == db_rt.status.current_seq()


def test_seed_accepts_caller_public_keys(rt):
    from cryptography.hazmat.primitives.asymmetric import rsa

    pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    seed_holders(rt, 10, workers=1, rng_seed=2, public_keys=[pem], progress=False)
    with rt.store.session() as s:
        der = s.scalars(select(Certificate.stored_der)).first()
    assert x509.load_der_x509_certificate(der).public_key().public_numbers() == pub.public_numbers()
