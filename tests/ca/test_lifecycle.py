"""Holders, issuance and revocation on both databases (SQLite and PostgreSQL)."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.ca.status import HOLD, REASONS
from jpki_mock.errors import AlreadyRevoked, Conflict, HoldNotReleasable, InvalidInput, NotEligible, NotFound
from tests.support import HOLDER


def counts(rt):
    with rt.store.session() as s:
        return (s.scalar(select(func.count()).select_from(Holder)),
                s.scalar(select(func.count()).select_from(Certificate)))


def issue_both(rt, **holder):
    h = rt.authority.create_holder({**HOLDER, **holder})
    items = {i.certificate.kind: i.certificate for i in rt.authority.issue(h.id, "both", pkcs12_passphrase="pass1234")}
    return h, items


def test_status_lookup_is_one_indexed_read(db_rt):
    _h, certs = issue_both(db_rt)
    issuer = db_rt.authority.issuer("sign")
    st = db_rt.status.lookup(issuer.id, certs["sign"].serial)
    assert st.status == "good" and st.kind == "sign" and st.municipality == "13101"
    assert db_rt.status.lookup(issuer.id, 999_999_999) is None
    assert db_rt.status.lookup(issuer.id, 2**80) is None  # beyond BIGINT: never issued, no error
    with db_rt.store.engine.connect() as conn:
        if db_rt.store.is_sqlite:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT status FROM certificates WHERE ca_id=? AND serial=?", (issuer.id, 1)).all()
            assert any("USING INDEX" in str(row) or "USING COVERING INDEX" in str(row) for row in plan), plan
        else:
            plan = conn.exec_driver_sql(
                "EXPLAIN SELECT status FROM certificates WHERE ca_id=%s AND serial=%s", (issuer.id, 1)).all()
            conn.exec_driver_sql("ANALYZE certificates")
            assert "Index" in str(plan) or "Seq Scan" in str(plan)  # tiny table; the unique index exists:
            idx = conn.exec_driver_sql("SELECT indexdef FROM pg_indexes WHERE tablename='certificates'").all()
            assert any("(ca_id, serial)" in r[0] and "UNIQUE" in r[0] for r in idx), idx


def test_revoke_records_reason_and_sequence(db_rt):
    _, certs = issue_both(db_rt)
    before = db_rt.status.current_seq()
    db_rt.authority.revoke("sign", certs["sign"].serial, "keyCompromise")
    st = db_rt.status.lookup(db_rt.authority.issuer("sign").id, certs["sign"].serial)
    assert (st.status, st.reason_name, st.revoked_at) == ("revoked", "keyCompromise", db_rt.clock.now())
    assert db_rt.status.current_seq() == before + 1
    assert [c.serial for c in db_rt.status.changes_since(before)] == [certs["sign"].serial]
    assert db_rt.epoch.read() == before + 1
    with pytest.raises(AlreadyRevoked):
        db_rt.authority.revoke("sign", certs["sign"].serial, "superseded")
    assert db_rt.status.current_seq() == before + 1  # nothing written


def test_revoked_entries_stream_in_serial_order_per_partition(db_rt):
    serials = []
    for addr in ["東京都千代田区1", "東京都港区2", "東京都千代田区3", "大阪府大阪市4"]:
        _, certs = issue_both(db_rt, address=addr)
        serials.append((certs["auth"].serial, addr))
    for serial, _ in reversed(serials):
        db_rt.authority.revoke("auth", serial, "cessationOfOperation")
    auth_id = db_rt.authority.issuer("auth").id
    assert [e.serial for e in db_rt.status.revoked_entries(auth_id, batch=2)] == sorted(s for s, _ in serials)
    chiyoda = [e.serial for e in db_rt.status.revoked_entries(auth_id, municipality="13101")]
    assert chiyoda == sorted(s for s, a in serials if "千代田区" in a)
    assert db_rt.status.count_revoked(auth_id) == 4
    assert db_rt.status.municipalities_of(auth_id) == ["13101", "13103", "27100"]


def test_no_signature_certificate_under_15(db_rt):
    h = db_rt.authority.create_holder({**HOLDER, "date_of_birth": "2015-01-01"})
    before = counts(db_rt)
    with pytest.raises(NotEligible) as err:
        db_rt.authority.issue(h.id, "both", pkcs12_passphrase="pass1234")
    assert err.value.field == "kinds" and err.value.allowed == ["auth"]
    assert counts(db_rt) == before
    item = db_rt.authority.issue(h.id, "auth", pkcs12_passphrase="pass1234")[0]
    assert item.certificate.kind == "auth"


def test_second_valid_certificate_of_a_kind_is_refused(db_rt):
    h, _ = issue_both(db_rt)
    with pytest.raises(Conflict, match="renewal"):
        db_rt.authority.issue(h.id, "sign", pkcs12_passphrase="pass1234")


def test_address_change_revokes_only_signature_certificate(db_rt):
    h, certs = issue_both(db_rt)
    result = db_rt.authority.event(h.id, "change", changes={"address": "東京都港区芝公園4-2-8"})
    assert result["revoked"] == [{"kind": "sign", "serial": certs["sign"].serial, "reason": "affiliationChanged"}]
    holder = db_rt.authority.get_holder(h.id)
    assert holder.municipality == "13103" and holder.address_flags == "0" * len("東京都港区芝公園4-2-8")
    ids = {k: db_rt.authority.issuer(k).id for k in ("sign", "auth")}
    assert db_rt.status.lookup(ids["sign"], certs["sign"].serial).reason == REASONS["affiliationChanged"]
    assert db_rt.status.lookup(ids["auth"], certs["auth"].serial).status == "good"


def test_death_and_card_return_revoke_both(db_rt):
    for event in ("death", "card_return"):
        h, _certs = issue_both(db_rt)
        result = db_rt.authority.event(h.id, event)
        assert sorted(r["kind"] for r in result["revoked"]) == ["auth", "sign"]
        assert {r["reason"] for r in result["revoked"]} == {"cessationOfOperation"}
        with pytest.raises(Conflict):
            db_rt.authority.issue(h.id, "auth", pkcs12_passphrase="pass1234")


def test_loss_holds_both_and_hold_is_never_released(db_rt):
    h, certs = issue_both(db_rt)
    db_rt.authority.event(h.id, "loss")
    ids = {k: db_rt.authority.issuer(k).id for k in ("sign", "auth")}
    for kind in ("sign", "auth"):
        st = db_rt.status.lookup(ids[kind], certs[kind].serial)
        assert st.status == "revoked" and st.reason == HOLD
    with pytest.raises(HoldNotReleasable, match="never released"):
        db_rt.authority.release_hold("sign", certs["sign"].serial)
    assert db_rt.status.lookup(ids["sign"], certs["sign"].serial).reason == HOLD
    # Found card: renewal revokes the held certificates (superseded) and issues new ones.
    db_rt.clock.advance(days=1)
    result = db_rt.authority.event(h.id, "renewal", pkcs12_passphrase="pass1234")
    assert len(result["issued"]) == 2
    for kind in ("sign", "auth"):
        st = db_rt.status.lookup(ids[kind], certs[kind].serial)
        assert st.reason == REASONS["superseded"]
        assert st.revoked_at == db_rt.clock.now() - timedelta(days=1)  # the hold time stays the revocation date
    assert db_rt.authority.get_holder(h.id).state == "active"


def test_renewal_supersedes_old_certificates(db_rt):
    h, certs = issue_both(db_rt)
    result = db_rt.authority.event(h.id, "renewal", pkcs12_passphrase="pass1234")
    new = {i.certificate.kind: i.certificate.serial for i in result["issued"]}
    assert set(new) == {"sign", "auth"} and all(new[k] != certs[k].serial for k in new)
    assert {r["reason"] for r in result["revoked"]} == {"superseded"}


def test_expiring_lists_certificates_ending_within_days(db_rt):
    h, certs = issue_both(db_rt, card_expiry=(db_rt.clock.now() + timedelta(days=20)).date().isoformat())
    issue_both(db_rt, name="佐藤\u3000花子")
    soon = db_rt.authority.expiring(30)
    assert sorted(c.serial for c in soon if c.holder_id == h.id) == sorted([certs["sign"].serial, certs["auth"].serial])
    assert all(c.holder_id == h.id for c in soon)
    assert db_rt.authority.count_expiring(30) == 2
    assert db_rt.authority.expiring(10) == []


@pytest.mark.parametrize("call, exc, field", [
    (lambda a: a.revoke("sign", 424242, "keyCompromise"), NotFound, "serial"),
    (lambda a: a.revoke("sign", "12x", "keyCompromise"), InvalidInput, "serial"),
    (lambda a: a.revoke("sign", 1000001, "removeFromCRL"), InvalidInput, "reason"),
    (lambda a: a.revoke("signature", 1000001), InvalidInput, "issuer"),
    (lambda a: a.revoke("sign-g9", 1000001), NotFound, "generation"),
    (lambda a: a.issue(9999, "both", pkcs12_passphrase="pass1234"), NotFound, "holder"),
    (lambda a: a.issue(1, "card", pkcs12_passphrase="pass1234"), InvalidInput, "kinds"),
    (lambda a: a.issue(1, "auth"), InvalidInput, "pkcs12_passphrase"),
    (lambda a: a.issue(1, "auth", public_key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
     InvalidInput, "public_key"),
    (lambda a: a.issue(1, "auth", csr="not a csr"), InvalidInput, "csr"),
    (lambda a: a.event(1, "moved"), InvalidInput, "event"),
    (lambda a: a.event(1, "change", changes={"gender": "9"}), InvalidInput, "gender"),
    (lambda a: a.event(1, "change", changes={}), InvalidInput, "changes"),
    (lambda a: a.event(1, "change", changes={"gender": "1"}), InvalidInput, "changes"),
    (lambda a: a.create_holder({**HOLDER, "card_expiry": "2020-01-01"}), InvalidInput, "card_expiry"),
    (lambda a: a.create_holder({**HOLDER, "nickname": "taro"}), InvalidInput, "nickname"),
    (lambda a: a.create_holder({**HOLDER, "date_of_birth": "2099-01-01"}), InvalidInput, "date_of_birth"),
    (lambda a: a.list_certificates(limit=5000), InvalidInput, "limit"),
    (lambda a: a.list_certificates(status="valid"), InvalidInput, "status"),
])
def test_bad_calls_change_nothing(db_rt, call, exc, field):
    issue_both(db_rt)
    before = (counts(db_rt), db_rt.status.current_seq())
    with pytest.raises(exc) as err:
        call(db_rt.authority)
    assert err.value.field == field, err.value
    assert (counts(db_rt), db_rt.status.current_seq()) == before


def test_ec_public_key_is_refused_with_allowed_types(db_rt):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    h = db_rt.authority.create_holder(HOLDER)
    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InvalidInput) as err:
        db_rt.authority.issue(h.id, "auth", public_key=pem)
    assert "not an RSA key" in str(err.value) and err.value.allowed == "RSA 2048-4096 bits"


def test_caller_supplied_key_and_csr_are_used(db_rt):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    h = db_rt.authority.create_holder(HOLDER)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    item = db_rt.authority.issue(h.id, "sign", csr=csr.public_bytes(serialization.Encoding.PEM))[0]
    assert item.pkcs12 is None
    cert = x509.load_der_x509_certificate(item.certificate.der)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
