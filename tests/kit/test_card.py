"""The software card: PIN rules, lock-out, encryption at rest, signing, and its REST/CLI edges."""

from __future__ import annotations

import base64
import subprocess

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs12

from jpki_mock.app import create_admin_app
from jpki_mock.errors import Conflict, InvalidInput, NotEligible, NotFound
from jpki_mock.kit.card import CardService, PinLocked, WrongPin
from jpki_mock.kit.models import Card
from jpki_mock.runtime import Runtime
from tests.support import HOLDER

PASSWORD = "ABC123XYZ"
PIN = "4321"


@pytest.fixture
def cards(kit_rt) -> CardService:
    return CardService(kit_rt.authority)


@pytest.fixture
def holder(kit_rt):
    return kit_rt.authority.create_holder(HOLDER).id


@pytest.fixture
def card(cards, holder):
    cards.create(holder, auth_pin=PIN, sign_password=PASSWORD)
    return holder


def public_key(cert_row):
    return x509.load_der_x509_certificate(cert_row.der).public_key()


def test_create_issues_both_certificates_for_keys_made_on_the_card(kit_rt, cards, card):
    state = cards.state(card)
    assert set(state.certificates) == {"sign", "auth"}
    assert state.as_dict()["sign"]["tries_left"] == 5 and state.as_dict()["auth"]["tries_left"] == 3
    # The certificates in the CA's store are the card's: the key on the card signs for them.
    sig, row = cards.sign(card, b"doc", PASSWORD, "pkcs1")
    public_key(row).verify(sig, b"doc", padding.PKCS1v15(), hashes.SHA256())
    stored = kit_rt.authority.get_certificate("sign", row.serial)
    assert stored.holder_id == card and bytes(stored.der) == bytes(row.der)


@pytest.mark.parametrize("field,kwargs", [
    ("auth_pin", {"auth_pin": "123", "sign_password": PASSWORD}),
    ("auth_pin", {"auth_pin": "12345", "sign_password": PASSWORD}),
    ("auth_pin", {"auth_pin": "12a4", "sign_password": PASSWORD}),
    ("auth_pin", {"auth_pin": None, "sign_password": PASSWORD}),
    ("sign_password", {"auth_pin": PIN, "sign_password": "ABC12"}),
    ("sign_password", {"auth_pin": PIN, "sign_password": "A" * 17}),
    ("sign_password", {"auth_pin": PIN, "sign_password": "abc123"}),
    ("sign_password", {"auth_pin": PIN, "sign_password": "ABC-123"}),
    ("sign_password", {"auth_pin": PIN, "sign_password": None}),
])
def test_pin_rules_refuse_bad_pins_and_change_nothing(kit_rt, cards, holder, field, kwargs):
    with pytest.raises(InvalidInput) as err:
        cards.create(holder, **kwargs)
    assert err.value.field == field and err.value.allowed
    assert kit_rt.authority.get_holder(holder).certificates == []
    with pytest.raises(NotFound):
        cards.state(holder)


def test_minor_gets_an_auth_only_card(kit_rt, cards):
    today = kit_rt.clock.now().date()
    minor_dob = today.replace(year=today.year - 10).isoformat()
    minor = kit_rt.authority.create_holder({**HOLDER, "date_of_birth": minor_dob}).id
    with pytest.raises(NotEligible):
        cards.create(minor, auth_pin=PIN, sign_password=PASSWORD)
    state = cards.create(minor, auth_pin=PIN)
    assert set(state.certificates) == {"auth"} and state.as_dict()["sign"] is None
    with pytest.raises(NotEligible):
        cards.sign(minor, b"x", PASSWORD)


def test_second_card_and_unknown_holder_are_refused(cards, card):
    with pytest.raises(Conflict):
        cards.create(card, auth_pin=PIN, sign_password=PASSWORD)
    with pytest.raises(NotFound):
        cards.create(9999, auth_pin=PIN, sign_password=PASSWORD)


def test_signature_password_locks_after_five_wrong_tries(cards, card):
    for left in (4, 3, 2, 1):
        with pytest.raises(WrongPin) as err:
            cards.certificate(card, "sign", "WRONG1")
        assert err.value.data["tries_left"] == left
    # A right password restores the count, as on the card.
    cards.certificate(card, "sign", PASSWORD)
    assert cards.state(card).as_dict()["sign"]["tries_left"] == 5
    for _ in range(5):
        with pytest.raises(WrongPin):
            cards.sign(card, b"x", "WRONG1")
    with pytest.raises(PinLocked):
        cards.sign(card, b"x", PASSWORD)  # even the right one: locked
    assert cards.state(card).as_dict()["sign"]["locked"] is True
    # The user-authentication PIN is independent.
    cards.authenticate(card, b"challenge", PIN)


def test_auth_pin_locks_after_three_and_operator_unlock(cards, card):
    for _ in range(3):
        with pytest.raises(WrongPin):
            cards.authenticate(card, b"challenge", "0000")
    with pytest.raises(PinLocked):
        cards.authenticate(card, b"challenge", PIN)
    assert cards.unlock(card, "auth").as_dict()["auth"]["tries_left"] == 3
    cards.authenticate(card, b"challenge", PIN)


def test_malformed_pin_costs_no_try(cards, card):
    with pytest.raises(InvalidInput):
        cards.authenticate(card, b"challenge", "12")
    assert cards.state(card).as_dict()["auth"]["tries_left"] == 3


def test_lock_survives_a_restart(kit_rt, cards, card):
    for _ in range(3):
        with pytest.raises(WrongPin):
            cards.authenticate(card, b"c", "0000")
    again = Runtime.open(kit_rt.config, kit_rt.clock)
    try:
        with pytest.raises(PinLocked):
            CardService(again.authority).authenticate(card, b"c", PIN)
    finally:
        again.close()


def test_reset_writes_a_new_key_and_certificate(kit_rt, cards, card):
    old = cards.certificate(card, "sign", PASSWORD)
    state = cards.reset(card, "sign", "NEWPASS99")
    new = state.certificates["sign"]
    assert new.serial != old.serial
    assert kit_rt.authority.get_certificate("sign", old.serial).reason == 4  # superseded
    with pytest.raises(WrongPin):
        cards.sign(card, b"x", PASSWORD)
    sig, row = cards.sign(card, b"x", "NEWPASS99", "pss")
    public_key(row).verify(sig, b"x", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    with pytest.raises(InvalidInput):
        cards.reset(card, "sign", "bad")
    with pytest.raises(InvalidInput):
        cards.reset(card, "both", "NEWPASS99")


def test_keys_are_sealed_under_pin_and_passphrase(kit_rt, cards, card):
    with kit_rt.store.session() as s:
        row = s.query(Card).filter_by(holder_id=card).one()
        blob = bytes(row.auth_key)
    p12 = cards.export_pkcs12(card, "auth", PIN, "export-pass")
    key, cert, extra = pkcs12.load_key_and_certificates(p12, b"export-pass")
    private_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    d = key.private_numbers().d.to_bytes(256, "big")
    assert private_der not in blob and d not in blob
    # The same PIN with another passphrase opens nothing (and costs a try).
    other = CardService(kit_rt.authority.__class__(kit_rt.config.replace(key_passphrase="other"), kit_rt.store,
                                                   kit_rt.clock, kit_rt.keyring, kit_rt.epoch))
    with pytest.raises(WrongPin):
        other.authenticate(card, b"c", PIN)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert [c.subject for c in extra] == [kit_rt.authority.issuer("auth").certificate.subject]


def test_cms_signature_verifies_with_openssl(tmp_path, kit_rt, cards, card):
    doc = "申請書: 転入届\n".encode()
    cms, _cert = cards.sign(card, doc, PASSWORD, "cms")
    info = asn1_cms.ContentInfo.load(cms)
    assert info["content_type"].native == "signed_data"
    assert info["content"]["encap_content_info"]["content"].native is None  # detached
    (tmp_path / "doc").write_bytes(doc)
    (tmp_path / "sig.der").write_bytes(cms)
    (tmp_path / "ca.pem").write_text(kit_rt.authority.issuer("sign").pem)
    res = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "sig.der"),
                          "-content", str(tmp_path / "doc"), "-CAfile", str(tmp_path / "ca.pem"),
                          "-purpose", "any", "-out", "/dev/null"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "Verification successful" in res.stderr
    (tmp_path / "doc").write_bytes(doc + b"tampered")
    res = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "sig.der"),
                          "-content", str(tmp_path / "doc"), "-CAfile", str(tmp_path / "ca.pem"),
                          "-purpose", "any", "-out", "/dev/null"], capture_output=True, text=True)
    assert res.returncode != 0


def test_sign_bad_inputs(cards, card):
    with pytest.raises(InvalidInput) as err:
        cards.sign(card, b"x", PASSWORD, "md5")
    assert err.value.field == "scheme"
    with pytest.raises(InvalidInput):
        cards.sign(card, "text", PASSWORD)
    with pytest.raises(InvalidInput):
        cards.authenticate(card, b"", PIN)
    with pytest.raises(InvalidInput):
        cards.authenticate(card, b"x" * 2000, PIN)
    with pytest.raises(InvalidInput):
        cards.export_pkcs12(card, "auth", PIN, "ab")
    assert cards.state(card).as_dict()["auth"]["tries_left"] == 3


# ---------------------------------------------------------------- REST
@pytest.fixture
def client(kit_rt):
    app = create_admin_app(kit_rt)
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {kit_rt.token}"
    return c


def test_rest_card_lifecycle(kit_rt, client, holder):
    url = f"/admin/api/holders/{holder}/card"
    r = client.post(url, json={"sign_password": PASSWORD, "auth_pin": PIN})
    assert r.status_code == 201, r.json
    assert r.json["sign"]["tries_left"] == 5
    # The auth certificate reads freely; the signature one needs the password.
    auth = client.get(url + "/certificates/auth")
    assert auth.status_code == 200 and "BEGIN CERTIFICATE" in auth.json["pem"]
    assert client.post(url + "/certificates/sign", json={}).status_code == 400
    wrong = client.post(url + "/certificates/sign", json={"password": "WRONG99"})
    assert wrong.status_code == 403 and wrong.json["tries_left"] == 4 and wrong.json["error"] == "wrong_pin"
    sign = client.post(url + "/certificates/sign", json={"password": PASSWORD})
    assert sign.status_code == 200 and sign.json["kind"] == "sign"
    challenge = b"nonce-from-service"
    r = client.post(url + "/authenticate", json={"pin": PIN, "challenge_base64": base64.b64encode(challenge).decode()})
    assert r.status_code == 200
    cert = x509.load_pem_x509_certificate(r.json["certificate"]["pem"].encode())
    cert.public_key().verify(base64.b64decode(r.json["signature_base64"]), challenge, padding.PKCS1v15(),
                             hashes.SHA256())
    r = client.post(url + "/sign", json={"password": PASSWORD, "data_base64": base64.b64encode(b"doc").decode(),
                                         "scheme": "pkcs1"})
    assert r.status_code == 200 and r.json["scheme"] == "pkcs1"
    r = client.post(url + "/export", json={"kind": "sign", "pin": PASSWORD, "pkcs12_passphrase": "p12pass"})
    key, _, _ = pkcs12.load_key_and_certificates(base64.b64decode(r.json["pkcs12_base64"]), b"p12pass")
    assert key.key_size == 2048


@pytest.mark.parametrize("path,body,field", [
    ("/sign", {"password": PASSWORD, "data_base64": "***"}, "data_base64"),
    ("/sign", {"password": PASSWORD}, "data_base64"),
    ("/sign", {"password": PASSWORD, "data_base64": "eA==", "scheme": "raw"}, "scheme"),
    ("/sign", {"password": PASSWORD, "data_base64": "eA==", "extra": 1}, "extra"),
    ("/authenticate", {"pin": "12", "challenge_base64": "eA=="}, "pin"),
    ("/unlock", {"kind": "both"}, "kind"),
    ("/reset", {"kind": "auth", "new_pin": "abcd"}, "new_pin"),
    ("/export", {"kind": "auth"}, "pin"),
])
def test_rest_bad_input_is_400_and_changes_nothing(client, card, path, body, field):
    r = client.post(f"/admin/api/holders/{card}/card{path}", json=body)
    assert r.status_code == 400, r.json
    assert r.json["field"] == field
    state = client.get(f"/admin/api/holders/{card}/card").json
    assert state["sign"]["tries_left"] == 5 and state["auth"]["tries_left"] == 3


def test_rest_locked_is_409_and_needs_the_token(kit_rt, client, card):
    url = f"/admin/api/holders/{card}/card"
    for _ in range(3):
        client.post(url + "/authenticate", json={"pin": "0000", "challenge_base64": "eA=="})
    r = client.post(url + "/authenticate", json={"pin": PIN, "challenge_base64": "eA=="})
    assert r.status_code == 409 and r.json["error"] == "pin_locked"
    assert client.post(url + "/unlock", json={"kind": "auth"}).json["auth"]["tries_left"] == 3
    anonymous = create_admin_app(kit_rt).test_client()
    assert anonymous.get(url).status_code == 401
    assert client.get("/admin/api/holders/999/card").status_code == 404


# ---------------------------------------------------------------- CLI
def test_cli_card_commands(tmp_path, kit_rt, holder):
    from click.testing import CliRunner

    from jpki_mock.cli import main

    env = {"JPKI_MOCK_DATA": str(kit_rt.config.data_dir), "JPKI_MOCK_KEY_PASSPHRASE": kit_rt.config.key_passphrase}
    runner = CliRunner()

    def run(*args, input=None):
        return runner.invoke(main, list(args), env=env, input=input)

    r = run("card", "create", str(holder), "--sign-password", PASSWORD, "--auth-pin", PIN)
    assert r.exit_code == 0, r.output
    assert "signature key generated on the card" in r.output
    doc = tmp_path / "doc.txt"
    doc.write_bytes(b"hello")
    r = run("card", "sign", str(holder), "--in", str(doc), "--out", str(tmp_path / "doc.p7s"), "--password", PASSWORD)
    assert r.exit_code == 0, r.output
    assert asn1_cms.ContentInfo.load((tmp_path / "doc.p7s").read_bytes())["content_type"].native == "signed_data"
    r = run("card", "cert", str(holder), "--kind", "sign", "--password", "WRONG1")
    assert r.exit_code == 6 and "4 of 5 tries left" in r.output
    r = run("card", "cert", str(holder), "--kind", "auth")
    assert r.exit_code == 0 and r.output.startswith("-----BEGIN CERTIFICATE-----")
    # The PIN is asked for, hidden, when not given.
    r = run("card", "auth", str(holder), "--challenge", str(doc), "--out", str(tmp_path / "sig"), input=PIN + "\n")
    assert r.exit_code == 0, r.output
    r = run("card", "create", str(holder), "--sign-password", PASSWORD, "--auth-pin", PIN)
    assert r.exit_code == 4 and "already has a card" in r.output
    r = run("card", "reset", str(holder), "--kind", "auth", "--new-pin", "12")
    assert r.exit_code == 2 and "4 digits" in r.output


class Midway(RuntimeError):
    pass


def test_reset_is_one_unit_of_work(kit_rt, cards, card, monkeypatch):
    """The old certificate's revocation, the new certificate and the card's new key commit together."""
    old = cards.certificate(card, "sign", PASSWORD)
    with kit_rt.store.session() as s:
        key_before = bytes(s.query(Card).filter_by(holder_id=card).one().sign_key)
    epoch = kit_rt.epoch.read()

    def stage(work, plan):
        assert work.revocation_seq is not None  # the old certificate's revocation is already staged
        raise Midway("issuance failed")

    monkeypatch.setattr(kit_rt.authority.issuance, "stage", stage)
    with pytest.raises(Midway):
        cards.reset(card, "sign", "NEWPASS99")
    monkeypatch.undo()
    assert kit_rt.authority.get_certificate("sign", old.serial).status == "good"
    assert kit_rt.epoch.read() == epoch
    with kit_rt.store.session() as s:
        assert bytes(s.query(Card).filter_by(holder_id=card).one().sign_key) == key_before
    cards.sign(card, b"x", PASSWORD)  # the old key and password still work


def test_create_leaves_no_certificate_without_its_card(kit_rt, cards, holder, monkeypatch):
    def add_card(self, instance, *args, **kwargs):
        if isinstance(instance, Card):
            raise Midway("card write failed")
        return original(self, instance, *args, **kwargs)

    from sqlalchemy.orm import Session

    original = Session.add
    monkeypatch.setattr(Session, "add", add_card)
    with pytest.raises(Midway):
        cards.create(holder, auth_pin=PIN, sign_password=PASSWORD)
    monkeypatch.undo()
    assert kit_rt.authority.list_certificates(holder=holder) == []
    cards.create(holder, auth_pin=PIN, sign_password=PASSWORD)  # nothing half-made blocks a retry
    assert len(kit_rt.authority.list_certificates(holder=holder)) == 2
