"""One card, one certificate of each kind: every life event keeps the software card and the store in
agreement (a card holds one certificate of each kind, docs/sources.md section 5).

After each step, from the store: at most one valid (not revoked, not expired) certificate of each
kind for the holder; from the card, read back and parsed with asn1crypto and pyca: the card holds
the holder's newest certificate of each kind (so any valid one), and the card's key is that
certificate's key (a signature made on the card verifies with it).  A hypothesis state machine
walks the life events in any order, on SQLite and PostgreSQL; the directed tests pin the two bugs
of issue 15.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

import pytest
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from jpki_mock.ca.authority import Authority
from jpki_mock.ca.models import Certificate
from jpki_mock.errors import Conflict
from jpki_mock.kit.card import CardService, WrongPin
from jpki_mock.runtime import Runtime
from jpki_mock.vocab import HolderState
from tests.support import HOLDER

KINDS = ("sign", "auth")
#: addresses to move between: the mock's first 26 and beyond them (a town written with its district)
ADDRESSES = ["東京都千代田区千代田1-1", "東京都文京区本郷7-3-1", "北海道虻田郡洞爺湖町栄町58",
             "大阪府大阪市北区梅田1-1"]
NAMES = ["山田\u3000花子", "佐藤\u3000花子", "鈴木\u3000花子"]
SUPERSEDED, HOLD, AFFILIATION_CHANGED = 4, 6, 3


@dataclass
class Holder:
    id: int
    password: str = "FIRST123"
    pin: str = "1234"
    state: str = HolderState.ACTIVE
    address: str = ADDRESSES[0]
    name: str = HOLDER["name"]


def store_certs(rt: Runtime, holder_id: int) -> list[Certificate]:
    return rt.authority.list_certificates(holder=holder_id, limit=1000)


def valid(rt: Runtime, holder_id: int, kind: str) -> list[Certificate]:
    now = rt.clock.now()
    return [c for c in store_certs(rt, holder_id) if c.kind == kind and c.status == "good" and c.not_after > now]


def card_certificate(cards: CardService, h: Holder, kind: str) -> tuple[bytes, x509.Certificate]:
    """Read the certificate from the card as a relying party gets it (auth freely, sign with the
    password), prove the card's key is the certificate's key, and return its DER and pyca object."""
    data = f"holder {h.id} {kind}".encode()
    if kind == "sign":
        signature, row = cards.sign(h.id, data, h.password, "pkcs1")
    else:
        signature, row = cards.authenticate(h.id, data, h.pin)
    der = bytes(row.der)
    cert = x509.load_der_x509_certificate(der)
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())  # the card's key is the certificate's
    return der, cert


def check_one_card(rt: Runtime, cards: CardService, h: Holder) -> dict[str, int]:
    """The invariant, from the store and from the card; returns the card's serial per kind."""
    on_card: dict[str, int] = {}
    stored = store_certs(rt, h.id)
    for kind in KINDS:
        live = valid(rt, h.id, kind)
        assert len(live) <= 1, f"holder {h.id} has {len(live)} valid {kind} certificates: {[c.serial for c in live]}"
        der, cert = card_certificate(cards, h, kind)
        parsed = ax509.Certificate.load(der)  # a second, independent parser agrees
        assert parsed.serial_number == cert.serial_number
        issuer = rt.authority.issuer_by_id(next(c.ca_id for c in stored if c.serial == cert.serial_number
                                                and c.kind == kind))
        assert parsed.issuer.dump() == ax509.Certificate.load(issuer.der).subject.dump()
        newest = max((c for c in stored if c.kind == kind), key=lambda c: c.id)
        assert cert.serial_number == newest.serial, (
            f"the card holds {kind} {cert.serial_number}, the holder's newest is {newest.serial}")
        if live:
            assert live[0].serial == cert.serial_number, f"the valid {kind} certificate is not on the card"
        on_card[kind] = cert.serial_number
    return on_card


def status_of(rt: Runtime, kind: str, serial: int) -> tuple[str, int | None]:
    c = rt.authority.get_certificate(kind, serial)
    return c.status, c.reason


# ---------------------------------------------------------------- the two bugs of issue 15
@pytest.fixture
def cards(db_rt: Runtime) -> CardService:
    return CardService(db_rt.authority)


def new_card(rt: Runtime, cards: CardService) -> Holder:
    h = Holder(rt.authority.create_holder(HOLDER).id)
    cards.create(h.id, auth_pin=h.pin, sign_password=h.password)
    return h


def test_found_card_is_renewed_onto_the_card_and_a_later_reset_leaves_one_auth(db_rt, cards):
    h = new_card(db_rt, cards)
    first = check_one_card(db_rt, cards, h)
    db_rt.authority.event(h.id, "loss")
    assert [status_of(db_rt, k, first[k]) for k in KINDS] == [("revoked", HOLD)] * 2
    db_rt.clock.advance(days=2)
    # Found: the municipality renews the card (the CA's own renewal event would certify keys that are
    # not on the card, and is refused for a holder with a card).
    with pytest.raises(Conflict, match="card renew") as err:
        db_rt.authority.event(h.id, "renewal", pkcs12_passphrase="pass1234")
    assert err.value.field == "holder"
    assert [status_of(db_rt, k, first[k]) for k in KINDS] == [("revoked", HOLD)] * 2  # the refusal changed nothing
    h.password, h.pin = "FOUND123", "5678"
    cards.renew(h.id, auth_pin=h.pin, sign_password=h.password)
    assert db_rt.authority.get_holder(h.id).state == HolderState.ACTIVE
    renewed = check_one_card(db_rt, cards, h)
    for kind in KINDS:
        assert renewed[kind] != first[kind] and valid(db_rt, h.id, kind)[0].serial == renewed[kind]
        assert status_of(db_rt, kind, first[kind]) == ("revoked", SUPERSEDED)  # the hold became final
    h.pin = "2468"
    cards.reset(h.id, "auth", h.pin)
    after = check_one_card(db_rt, cards, h)
    assert len(valid(db_rt, h.id, "auth")) == 1 and after["auth"] != renewed["auth"]
    assert status_of(db_rt, "auth", renewed["auth"]) == ("revoked", SUPERSEDED)


def test_the_ca_issues_nothing_off_the_card_to_a_holder_with_one(db_rt, cards):
    h = new_card(db_rt, cards)
    db_rt.authority.event(h.id, "change", changes={"address": ADDRESSES[1]})  # sign revoked: re-issue needed
    before = len(store_certs(db_rt, h.id))
    with pytest.raises(Conflict, match="card reset") as err:
        db_rt.authority.issue(h.id, "sign", pkcs12_passphrase="pass1234")
    assert err.value.field == "holder" and "card/renew" in err.value.allowed
    assert len(store_certs(db_rt, h.id)) == before
    h.password = "MOVED123"
    cards.reset(h.id, "sign", h.password)  # the re-issue, onto the card, with the new address
    on_card = check_one_card(db_rt, cards, h)
    cert = x509.load_der_x509_certificate(bytes(db_rt.authority.get_certificate("sign", on_card["sign"]).der))
    assert [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.LOCALITY_NAME)] == \
        ["Tokyo-to", "Bunkyo-ku"]


def test_a_reset_supersedes_a_valid_certificate_that_is_not_on_the_card(db_rt, cards):
    """The CA's rule, not the card's bookkeeping: a new certificate of a kind supersedes every valid
    one of that kind.  An authority without the card's custody check (as before the fix) issues an
    auth certificate off the card; the card's reset still leaves exactly one valid."""
    h = new_card(db_rt, cards)
    db_rt.authority.event(h.id, "request", reason="keyCompromise", kinds="auth")
    bare = Authority(db_rt.config, db_rt.store, db_rt.clock, db_rt.keyring, db_rt.epoch)
    (stray,) = bare.issue(h.id, "auth", pkcs12_passphrase="pass1234")
    assert len(valid(db_rt, h.id, "auth")) == 1
    h.pin = "9999"
    cards.reset(h.id, "auth", h.pin)
    assert status_of(db_rt, "auth", stray.certificate.serial) == ("revoked", SUPERSEDED)
    check_one_card(db_rt, cards, h)


def test_a_minor_card_renews_auth_only_and_gets_a_signature_key_at_15(db_rt, cards):
    today = db_rt.clock.now().date()
    dob = today.replace(year=today.year - 15) + timedelta(days=30)
    h = Holder(db_rt.authority.create_holder({**HOLDER, "date_of_birth": dob.isoformat()}).id)
    cards.create(h.id, auth_pin=h.pin)
    assert set(cards.renew(h.id, auth_pin="1111").certificates) == {"auth"}
    db_rt.clock.advance(days=31)  # now 15
    state = cards.renew(h.id, auth_pin=h.pin, sign_password=h.password)
    assert set(state.certificates) == {"sign", "auth"}
    check_one_card(db_rt, cards, h)


def test_two_resets_at_once_leave_one_valid_certificate(db_rt, cards):
    """Two operators reset the same key at the same moment: the holder's row lock queues them, the
    second supersedes the first's certificate, and the card holds the second's."""
    h = new_card(db_rt, cards)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def reset(pin: str) -> None:
        barrier.wait()
        try:
            cards.reset(h.id, "auth", pin)
        except BaseException as exc:  # reported below, with the invariant
            errors.append(exc)

    threads = [threading.Thread(target=reset, args=(pin,)) for pin in ("1111", "2222")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(valid(db_rt, h.id, "auth")) == 1
    h.pin = "1111" if _opens(cards, h.id, "1111") else "2222"  # whichever reset committed last
    check_one_card(db_rt, cards, h)


def _opens(cards: CardService, holder_id: int, pin: str) -> bool:
    try:
        cards.authenticate(holder_id, b"which", pin)
    except WrongPin:
        return False
    return True


# ---------------------------------------------------------------- every life event, in any order
class LifeEvents(RuleBasedStateMachine):
    """One holder per example, its card issued at the start; rules are the life events."""

    def __init__(self, rt: Runtime):
        super().__init__()
        self.rt = rt
        self.cards = CardService(rt.authority)
        self.h = new_card(rt, self.cards)

    def expect(self, allowed: bool, action) -> bool:
        """Run ``action``; it must succeed exactly when ``allowed``, and a refusal must change nothing."""
        before = [(c.serial, c.status, c.reason) for c in store_certs(self.rt, self.h.id)]
        if allowed:
            action()
            return True
        with pytest.raises(Conflict):
            action()
        assert [(c.serial, c.status, c.reason) for c in store_certs(self.rt, self.h.id)] == before
        return False

    @property
    def open(self) -> bool:
        return self.h.state != HolderState.DECEASED

    @rule(data=st.data())
    def move_house(self, data):
        address = data.draw(st.sampled_from([a for a in ADDRESSES if a != self.h.address]))
        auth_before = [c.serial for c in valid(self.rt, self.h.id, "auth")]
        self.rt.authority.event(self.h.id, "change", changes={"address": address})
        self.h.address = address
        assert valid(self.rt, self.h.id, "sign") == []  # affiliationChanged [C]
        assert [c.serial for c in valid(self.rt, self.h.id, "auth")] == auth_before  # no personal data in it

    @rule(data=st.data())
    def change_name(self, data):
        name = data.draw(st.sampled_from([n for n in NAMES if n != self.h.name]))
        self.rt.authority.event(self.h.id, "change", changes={"name": name})
        self.h.name = name
        assert valid(self.rt, self.h.id, "sign") == []

    @rule()
    def lose(self):
        if self.expect(self.h.state == HolderState.ACTIVE, lambda: self.rt.authority.event(self.h.id, "loss")):
            self.h.state = HolderState.LOST
            assert valid(self.rt, self.h.id, "sign") == valid(self.rt, self.h.id, "auth") == []

    @rule(password=st.sampled_from(["RENEW123", "NEWPASS9"]), pin=st.sampled_from(["4321", "8642"]))
    def renew_or_find(self, password, pin):
        """Renewal at the municipality; for a lost card that was found (or re-issued), the way back."""
        def renew():
            self.cards.renew(self.h.id, auth_pin=pin, sign_password=password)

        old = {k: {c.serial for c in store_certs(self.rt, self.h.id) if c.kind == k} for k in KINDS}
        if self.expect(self.h.state in (HolderState.ACTIVE, HolderState.LOST), renew):
            self.h.state, self.h.password, self.h.pin = HolderState.ACTIVE, password, pin
            for kind in KINDS:
                (live,) = valid(self.rt, self.h.id, kind)
                assert live.serial not in old[kind]
                for serial in old[kind]:
                    assert status_of(self.rt, kind, serial)[0] == "revoked"

    @rule(kind=st.sampled_from(KINDS), choice=st.integers(0, 1))
    def reset(self, kind, choice):
        """The operator's reset of one key (a forgotten PIN), also how a moved holder's signature
        certificate is re-issued onto the card."""
        new = ("RESET123", "RESET456")[choice] if kind == "sign" else ("1357", "2468")[choice]
        if self.expect(self.h.state == HolderState.ACTIVE, lambda: self.cards.reset(self.h.id, kind, new)):
            if kind == "sign":
                self.h.password = new
            else:
                self.h.pin = new
            assert len(valid(self.rt, self.h.id, kind)) == 1

    @rule(kind=st.sampled_from(["sign", "auth", "both"]))
    def reissue_through_the_ca(self, kind):
        """Certificates for keys made elsewhere: refused for a holder with a card, whatever its state."""
        self.expect(False, lambda: self.rt.authority.issue(self.h.id, kind, pkcs12_passphrase="pass1234"))
        self.expect(False, lambda: self.rt.authority.event(self.h.id, "renewal", pkcs12_passphrase="pass1234"))

    @rule(kinds=st.sampled_from(["sign", "auth", "both"]))
    def holder_asks_to_revoke(self, kinds):
        self.expect(self.open, lambda: self.rt.authority.event(self.h.id, "request", kinds=kinds))

    @precondition(lambda self: self.open)
    @rule()
    def death(self):
        self.rt.authority.event(self.h.id, "death")
        self.h.state = HolderState.DECEASED
        assert valid(self.rt, self.h.id, "sign") == valid(self.rt, self.h.id, "auth") == []

    @rule(days=st.integers(1, 60))
    def time_passes(self, days):
        self.rt.clock.advance(days=days)

    @invariant()
    def one_card_one_certificate_of_each_kind(self):
        check_one_card(self.rt, self.cards, self.h)
        assert self.rt.authority.get_holder(self.h.id).state == self.h.state


def test_every_life_event_keeps_card_and_store_in_agreement(db_rt):
    run_state_machine_as_test(lambda: LifeEvents(db_rt), settings=settings(
        max_examples=5, stateful_step_count=12, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow]))


def test_renew_over_rest_and_cli(kit_rt):
    from click.testing import CliRunner

    from jpki_mock.app import create_admin_app
    from jpki_mock.cli import main

    cards = CardService(kit_rt.authority)
    h = new_card(kit_rt, cards)
    kit_rt.authority.event(h.id, "loss")
    client = create_admin_app(kit_rt).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {kit_rt.token}"
    url = f"/admin/api/holders/{h.id}/card/renew"
    bad = client.post(url, json={"auth_pin": "12", "sign_password": "RENEW123"})
    assert bad.status_code == 400 and bad.json["field"] == "auth_pin"
    assert kit_rt.authority.get_holder(h.id).state == HolderState.LOST  # a refusal changes nothing
    r = client.post(url, json={"auth_pin": "4321", "sign_password": "RENEW123"})
    assert r.status_code == 200, r.json
    assert r.json["holder_state"] == "active" and r.json["sign"]["certificate_status"] == "good"
    h.pin, h.password = "4321", "RENEW123"
    check_one_card(kit_rt, cards, h)
    # The CA's API refuses the renewal event for a holder with a card, and says what to do instead.
    r = client.post(f"/admin/api/holders/{h.id}/events", json={"event": "renewal", "pkcs12_passphrase": "pass1234"})
    assert r.status_code == 409 and r.json["field"] == "holder" and "card/renew" in r.json["allowed"]
    env = {"JPKI_MOCK_DATA": str(kit_rt.config.data_dir), "JPKI_MOCK_KEY_PASSPHRASE": kit_rt.config.key_passphrase}
    out = CliRunner().invoke(main, ["card", "renew", str(h.id), "--auth-pin", "8642", "--sign-password", "CLI12345"],
                             env=env)
    assert out.exit_code == 0, out.output
    h.pin, h.password = "8642", "CLI12345"
    check_one_card(kit_rt, cards, h)
    out = CliRunner().invoke(main, ["holder", "event", str(h.id), "renewal", "--p12-passphrase", "pass1234"], env=env)
    assert out.exit_code == 4 and "card renew" in out.output
