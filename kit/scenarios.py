"""The scenario catalog: every certificate state a JPKI verifier must handle, built for real.

``jpki-mock scenarios build --out DIR`` creates, in the configured CA, a fixed, named set of
holders (each with a software card) and certificates, drives each into its state through the
same operations the real service uses (resident-registry events, loss reports, PIN resets,
revocations), and writes:

- ``DIR/manifest.json``: the catalog's items, each with its files, kind, issuer generation,
  serial and the expected verification outcome (``valid``, ``revoked`` + reason, ``expired``,
  ``not_yet_valid``, ``unknown_issuer``, ``unknown``, ``bad_signature``, ``bad_crl_signature``,
  ``wrong_responder``, ``stale_response``) and which revocation methods (``crl``, ``ocsp``)
  apply to it;
- ``DIR/ca/``: every CA generation (PEM, DER) and ``trust.pem`` (all of them: JPKI renews its
  root keys under the same DN, so a verifier must trust every generation and pick by key);
- ``DIR/certs/``: each item's certificate as PEM, DER and PEM chain; ``DIR/p12/``: the card
  keys as PKCS#12 (passphrase in the manifest); ``DIR/broken/``: the deliberately broken
  artefacts.

The catalog is reproducible: the same items, holders, PINs and states on every build (keys and
serials are new each time).  When a CA kind has a single generation, the build rolls it over
so that previous-generation certificates exist, as after a real key renewal.

That rollover changes which CA certificate is current, so ``jpki-mock scenarios build`` builds
into a data directory of its own (:func:`open_catalog_instance`, by default
``<data_dir>/scenarios``) with its own CA, never into the user's; building into the user's CA
(``--into-my-ca``) first lists what it will change (:func:`planned_changes`) and asks.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import func, select
from tqdm import tqdm

from jpki_mock import audit, municipalities, names, urls
from jpki_mock.ca import keys, profile
from jpki_mock.ca.authority import Authority
from jpki_mock.ca.issuers import Issuer
from jpki_mock.ca.models import Certificate
from jpki_mock.ca.signer import Keyring, ResponderSigner
from jpki_mock.clock import JST, OffsetClock
from jpki_mock.kit.card import MAX_TRIES, CardService, WrongPin
from jpki_mock.private import write_private
from jpki_mock.vocab import Kind

CATALOG_NAME = "jpki-mock-scenarios/1"
SIGN_PASSWORD = "MOCK2026"
AUTH_PIN = "1234"
WRONG = {"sign": "WRONG000", "auth": "0000"}
# Far enough back that a 5-year certificate issued then (5th birthday after issue) has ended.
EXPIRED_SHIFT = timedelta(days=7 * 366)
NOT_YET_SHIFT = timedelta(days=30)
STALE_SHIFT = timedelta(days=1)


@dataclass(frozen=True)
class ItemSpec:
    name: str
    kind: str
    outcome: str
    description: str
    reason: str | None = None
    checks: tuple[str, ...] = ("crl", "ocsp")

    def expected_text(self) -> str:
        return f"{self.outcome} ({self.reason})" if self.reason else self.outcome


def _revoked(name: str, kind: str, reason: str, description: str) -> ItemSpec:
    return ItemSpec(name, kind, "revoked", description, reason)


CATALOG: list[ItemSpec] = [
    ItemSpec("valid-sign", "sign", "valid", "signature certificate, current CA generation"),
    ItemSpec("valid-auth", "auth", "valid", "user-authentication certificate, current CA generation"),
    ItemSpec("valid-sign-previous-generation", "sign", "valid",
             "signature certificate from the previous CA key generation (same DN: pick the issuer by key)"),
    ItemSpec("valid-auth-previous-generation", "auth", "valid",
             "user-authentication certificate from the previous CA key generation"),
    _revoked("revoked-sign-unspecified", "sign", "unspecified",
             "revoked, reason unspecified (destroyed before delivery)"),
    _revoked("revoked-sign-keyCompromise", "sign", "keyCompromise", "revoked: key compromise"),
    _revoked("revoked-sign-cACompromise", "sign", "cACompromise", "revoked: CA compromise"),
    _revoked("revoked-sign-superseded", "sign", "superseded",
             "the old signature certificate after the holder's password reset issued a new one"),
    _revoked("revoked-sign-cessationOfOperation", "sign", "cessationOfOperation", "revoked: no longer needed"),
    _revoked("revoked-auth-keyCompromise", "auth", "keyCompromise",
             "user-authentication certificate revoked: key compromise"),
    _revoked("revoked-sign-previous-generation", "sign", "keyCompromise",
             "revoked certificate of the previous CA generation (its own CRL, matched by key in OCSP)"),
    _revoked("moved-sign", "sign", "affiliationChanged",
             "the holder moved house: the resident registry's change revokes the signature certificate"),
    ItemSpec("moved-auth", "auth", "valid",
             "the same holder's user-authentication certificate: no personal data in it, so it stays valid"),
    ItemSpec("moved-new-sign", "sign", "valid", "the moved holder's new signature certificate with the new address"),
    _revoked("hold-sign", "sign", "certificateHold",
             "card reported lost: signature certificate on hold (never released)"),
    _revoked("hold-auth", "auth", "certificateHold", "card reported lost: user-authentication certificate on hold"),
    ItemSpec("expired-sign", "sign", "expired", "signature certificate past its notAfter"),
    ItemSpec("expired-auth", "auth", "expired", "user-authentication certificate past its notAfter"),
    ItemSpec("not-yet-valid-auth", "auth", "not_yet_valid",
             "user-authentication certificate whose notBefore is in the future"),
    ItemSpec("minor-auth", "auth", "valid", "a 10-year-old's card: user-authentication certificate only, no signature "
             "certificate under 15"),
    ItemSpec("locked-card-sign", "sign", "valid", "a card whose PINs are locked after too many wrong tries: the "
             "certificates stay valid (a lock is not a revocation)"),
    ItemSpec("unknown-issuer", "auth", "unknown_issuer", "a certificate from an impostor CA with the JPKI DN but "
             "another key"),
    ItemSpec("never-issued-serial", "sign", "unknown", "a serial number the CA never issued (OCSP only: there is no "
             "certificate)", checks=("ocsp",)),
    ItemSpec("wrong-generation", "sign", "bad_signature", "names the current CA generation's key (AKI) but is signed "
             "with the previous generation's key"),
    ItemSpec("broken-crl-bad-signature", "sign", "bad_crl_signature", "a valid certificate checked against a CRL "
             "whose signature does not verify", checks=("crl",)),
    ItemSpec("broken-ocsp-wrong-responder", "sign", "wrong_responder", "an OCSP response for a signature certificate "
             "signed by the user-authentication CA's responder", checks=("ocsp",)),
    ItemSpec("broken-ocsp-stale", "sign", "stale_response", "an OCSP response whose nextUpdate has passed",
             checks=("ocsp",)),
]
SPECS = {s.name: s for s in CATALOG}

# Holders are fixed by their position in the build: the same names, births and addresses each time.
_ADULT_DOB = date(1980, 4, 1)


def _holder_data(index: int, dob: date, address: str = "東京都千代田区千代田1-1") -> dict[str, Any]:
    surnames = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田", "松本",
                "井上"]
    given = ["太郎", "花子", "一郎", "陽子", "健", "美咲", "大輔", "結衣", "翔", "さくら", "蓮", "葵", "悠真", "陽菜"]
    return {"name": f"{surnames[index % len(surnames)]}\u3000{given[index % len(given)]}",
            "date_of_birth": (dob + timedelta(days=index)).isoformat(), "gender": "1" if index % 2 == 0 else "2",
            "address": f"{address}-{index + 1}" if address[-1].isdigit() else address}


def _shifted(rt: Any, delta: timedelta) -> Authority:
    """The same CA with its clock moved: certificates issued 'back then' or 'later', the way
    time passes on the real service (no special validity rules needed)."""
    return Authority(rt.config, rt.store, OffsetClock(rt.clock, delta), rt.keyring, rt.epoch,
                     custody=rt.authority.issuance.custody)


class Builder:
    def __init__(self, rt: Any, out: Path, progress: bool):
        self.rt = rt
        self.a = rt.authority
        self.cards = CardService(rt.authority)
        self.out = out
        self.items: dict[str, dict[str, Any]] = {}
        self.bar = tqdm(total=len(CATALOG), desc="scenarios", unit="item", disable=not progress)
        self.now = rt.clock.now()
        self.base = rt.config.public_url
        self._holders = 0

    # ---------------------------------------------------------------- files
    def write(self, rel: str, data: bytes | str) -> str:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        if path.suffix == ".p12":  # a card's private keys
            write_private(path, data)
            return rel
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return rel

    def write_issuers(self) -> list[dict[str, Any]]:
        out = []
        for i in self.a.issuers():
            out.append({"issuer": i.label, "kind": i.kind, "generation": i.generation,
                        "revoked": i.revoked_at is not None,
                        "pem": self.write(f"ca/{i.label}.pem", i.pem), "der": self.write(f"ca/{i.label}.der", i.der),
                        "crl_url": urls.crl_url(self.base, i.kind, i.generation)})
        self.write("ca/trust.pem", "".join(i.pem for i in self.a.issuers()))
        return out

    # ---------------------------------------------------------------- items
    def holder(self, authority: Authority | None = None, dob: date = _ADULT_DOB, **extra: Any) -> int:
        authority = authority or self.a
        data = _holder_data(self._holders, dob, **extra)
        self._holders += 1
        return authority.create_holder(data).id

    def card(self, holder_id: int, authority: Authority | None = None, generation: int | None = None,
             sign: bool = True) -> dict[str, Any]:
        service = CardService(authority) if authority is not None else self.cards
        state = service.create(holder_id, auth_pin=AUTH_PIN, sign_password=SIGN_PASSWORD if sign else None,
                               generation=generation)
        info: dict[str, Any] = {"holder": holder_id, "auth_pin": AUTH_PIN,
                                "sign_password": SIGN_PASSWORD if sign else None, "pkcs12": {}}
        for kind in state.certificates:
            p12 = service.export_pkcs12(holder_id, kind, SIGN_PASSWORD if kind == "sign" else AUTH_PIN)
            info["pkcs12"][kind] = self.write(f"p12/holder-{holder_id}-{kind}.p12", p12)
        info["certificates"] = dict(state.certificates)
        return info

    def add(self, name: str, cert: Certificate | None = None, *, card: dict[str, Any] | None = None,
            der: bytes | None = None, issuer: Issuer | None = None, serial: int | None = None, **extra: Any) -> dict:
        spec = SPECS[name]
        if cert is not None:
            der = self.a.der_of(cert)
            issuer = self.a.issuer_by_id(cert.ca_id)
            serial = cert.serial
        assert issuer is not None and serial is not None
        item: dict[str, Any] = {
            "name": name, "description": spec.description, "kind": spec.kind, "issuer": issuer.label,
            "generation": issuer.generation, "serial": serial, "serial_hex": f"{serial:x}",
            "expected": {"outcome": spec.outcome, **({"reason": spec.reason} if spec.reason else {})},
            "checks": list(spec.checks), "files": {"issuer_pem": f"ca/{issuer.label}.pem"},
            "ocsp_url": urls.ocsp_url(self.base),
        }
        if der is not None:
            c = x509.load_der_x509_certificate(der)
            pem = c.public_bytes(serialization.Encoding.PEM).decode()
            item["files"].update({"pem": self.write(f"certs/{name}.pem", pem),
                                  "der": self.write(f"certs/{name}.der", der),
                                  "chain_pem": self.write(f"certs/{name}.chain.pem", pem + issuer.pem)})
            item["not_before"] = c.not_valid_before_utc.isoformat()
            item["not_after"] = c.not_valid_after_utc.isoformat()
            cdp = c.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
            uris = [g.value for dp in cdp for g in (dp.full_name or [])
                    if isinstance(g, x509.UniformResourceIdentifier)]
            if uris:
                item["crl_url"] = uris[0]
        if card is not None:
            item["card"] = {k: card[k] for k in ("holder", "sign_password", "auth_pin")}
            held = card["certificates"].get(spec.kind)
            if held is not None and held.serial == serial and spec.kind in card["pkcs12"]:
                item["files"]["pkcs12"] = card["pkcs12"][spec.kind]
                item["pkcs12_passphrase"] = card["sign_password"] if spec.kind == "sign" else card["auth_pin"]
        item.update(extra)
        self.items[name] = item
        self.bar.update(1)
        return item

    def revoke(self, cert: Certificate, reason: str) -> None:
        self.a.revoke(self.a.issuer_by_id(cert.ca_id).label, cert.serial, reason)

    # ---------------------------------------------------------------- the catalog
    def build(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        self.previous_generation()
        self.current_generation()
        self.time_shifted()
        self.impostors()
        self.broken_artefacts()
        self.bar.close()
        missing = [s.name for s in CATALOG if s.name not in self.items]
        assert not missing, f"catalog items not built: {missing}"
        manifest = {
            "catalog": CATALOG_NAME, "built_at": self.now.isoformat(), "base_url": self.base,
            "ocsp_url": urls.ocsp_url(self.base), "hierarchy": self.rt.config.hierarchy,
            "faithful": self.rt.config.faithful,
            "issuers": self.write_issuers(), "trust_pem": "ca/trust.pem",
            "outcomes": sorted({s.outcome for s in CATALOG}),
            "items": [self.items[s.name] for s in CATALOG],
        }
        self.write("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        return manifest

    def previous_generation(self) -> None:
        """Certificates from the generation before the current one; roll over when there is none."""
        gens = _generations(self.a)
        previous = {k: (g[-2] if len(g) >= 2 else None) for k, g in gens.items()}
        use = {k: previous[k] if previous[k] is not None else gens[k][-1] for k in names.KINDS}
        if use[Kind.SIGN] != use[Kind.AUTH]:
            # A card is certified by both CAs at once; issue one kind per holder when generations differ.
            h1, h2 = self.holder(), self.holder()
            c1 = self.card(h1, generation=use[Kind.SIGN])
            c2 = self.card(h2, generation=use[Kind.AUTH])
            valid = (c1, c2)
        else:
            c = self.card(self.holder(), generation=use[Kind.SIGN])
            valid = (c, c)
        self.add("valid-sign-previous-generation", valid[0]["certificates"]["sign"], card=valid[0])
        self.add("valid-auth-previous-generation", valid[1]["certificates"]["auth"], card=valid[1])
        revoked = self.card(self.holder(), generation=use[Kind.SIGN])
        self.revoke(revoked["certificates"]["sign"], "keyCompromise")
        self.add("revoked-sign-previous-generation", revoked["certificates"]["sign"], card=revoked)
        for kind in names.KINDS:
            if previous[kind] is None:
                self.a.rollover(kind)

    def current_generation(self) -> None:
        c = self.card(self.holder())
        self.add("valid-sign", c["certificates"]["sign"], card=c)
        self.add("valid-auth", c["certificates"]["auth"], card=c)
        for reason in ("unspecified", "keyCompromise", "cACompromise", "cessationOfOperation"):
            r = self.card(self.holder())
            self.revoke(r["certificates"]["sign"], reason)
            self.add(f"revoked-sign-{reason}", r["certificates"]["sign"], card=r)
        r = self.card(self.holder())
        self.revoke(r["certificates"]["auth"], "keyCompromise")
        self.add("revoked-auth-keyCompromise", r["certificates"]["auth"], card=r)
        # superseded: the holder forgot the password; the municipality resets it, which writes a
        # new key and certificate and revokes the old one (ca/card/card.py CardService.reset).
        r = self.card(self.holder())
        old = r["certificates"]["sign"]
        self.cards.reset(r["holder"], "sign", SIGN_PASSWORD)
        self.add("revoked-sign-superseded", old, card=r)
        # Moving house: a basic-four change from the resident registry (docs/sources.md section 4).
        m = self.card(self.holder())
        self.a.event(m["holder"], "change", changes={"address": "大阪府大阪市北区梅田1-1"})
        self.add("moved-sign", m["certificates"]["sign"], card=m)
        self.add("moved-auth", m["certificates"]["auth"], card=m)
        new = self.cards.reset(m["holder"], "sign", SIGN_PASSWORD)
        p12 = self.cards.export_pkcs12(m["holder"], "sign", SIGN_PASSWORD)
        self.add("moved-new-sign", new.certificates["sign"], card={
            **m, "certificates": new.certificates,
            "pkcs12": {"sign": self.write(f"p12/holder-{m['holder']}-sign-new.p12", p12)}})
        # Loss reported to the 24-hour hotline: both on hold.
        lost = self.card(self.holder())
        self.a.event(lost["holder"], "loss")
        self.add("hold-sign", lost["certificates"]["sign"], card=lost)
        self.add("hold-auth", lost["certificates"]["auth"], card=lost)
        today = self.now.astimezone(JST).date()
        minor = self.card(self.holder(dob=today.replace(year=today.year - 10) - timedelta(days=1)), sign=False)
        self.add("minor-auth", minor["certificates"]["auth"], card=minor, sign_certificate=None)
        locked = self.card(self.holder())
        for _ in range(MAX_TRIES["sign"]):  # each wrong try raises WrongPin; the last one locks
            with suppress(WrongPin):
                self.cards.certificate(locked["holder"], "sign", WRONG["sign"])
        for _ in range(MAX_TRIES["auth"]):
            with suppress(WrongPin):
                self.cards.authenticate(locked["holder"], b"challenge", WRONG["auth"])
        state = self.cards.state(locked["holder"]).as_dict()
        assert state["sign"]["locked"] and state["auth"]["locked"], state
        self.add("locked-card-sign", locked["certificates"]["sign"], card=locked,
                 card_state={"sign_locked": True, "auth_locked": True})

    def time_shifted(self) -> None:
        past = _shifted(self.rt, -EXPIRED_SHIFT)
        e = self.card(self.holder(past), authority=past)
        self.add("expired-sign", e["certificates"]["sign"], card=e)
        self.add("expired-auth", e["certificates"]["auth"], card=e)
        future = _shifted(self.rt, NOT_YET_SHIFT)
        f = self.card(self.holder(future), authority=future)
        self.add("not-yet-valid-auth", f["certificates"]["auth"], card=f)

    def impostors(self) -> None:
        """Certificates no verifier may accept, built here (never stored as issued)."""
        valid = self.items["valid-auth"]
        current = {k: self.a.issuer(k) for k in names.KINDS}
        muni = municipalities.get("13101")
        self._fake_key = keys.generate_rsa()
        self._impostor_key = keys.generate_rsa()
        impostor_ca = profile.build_ca_certificate("auth", self.rt.config.hierarchy, self._impostor_key, 1, self.now)
        self.write("broken/impostor-ca.pem", impostor_ca.public_bytes(serialization.Encoding.PEM))
        impostor_info = profile.IssuerInfo("auth", 1, impostor_ca.subject,
                                           x509.SubjectKeyIdentifier.from_public_key(self._impostor_key.public_key()).digest)
        serial = valid["serial"]
        cert = profile.ee_certificate_builder(
            kind="auth", serial=serial, subject=names.auth_subject(profile.auth_cn()),
            public_key=self._fake_key.public_key(), not_before=self.now, not_after=self.now + timedelta(days=365),
            issuer=impostor_info, municipality=muni, profile=self.a.ee_profile,
        ).sign(self._impostor_key, hashes.SHA256())
        # Its issuer has the real DN: only the key (AKI, signature) tells it apart.
        item = self.add("unknown-issuer", der=cert.public_bytes(serialization.Encoding.DER), issuer=current[Kind.AUTH],
                        serial=serial)
        item.update(issuer="impostor", generation=None)
        item["files"]["issuer_pem"] = "broken/impostor-ca.pem"
        never = self._never_issued_serial()
        self.add("never-issued-serial", issuer=current[Kind.SIGN], serial=never,
                 ocsp_unknown_serial=self.rt.config.ocsp.unknown_serial)
        if self.rt.config.ocsp.unknown_serial == "revoked":
            # RFC 6960 section 4.4.8: "revoked" with the Extended Revoked Definition for a never-issued serial.
            self.items["never-issued-serial"]["expected"] = {"outcome": "revoked", "reason": "certificateHold"}
        gens = sorted(i.generation for i in self.a.issuers() if i.kind == "sign")
        prev = self.a.issuer("sign", gens[-2])
        # A deliberately wrong certificate: the previous generation's key signs under the current AKI.
        wrong = self.rt.keyring.sign_certificate(profile.ee_certificate_builder(
            kind="sign", serial=self._never_issued_serial() + 1, subject=names.sign_subject(muni, "WRONGGENERATION"),
            public_key=self._fake_key.public_key(), not_before=self.now, not_after=self.now + timedelta(days=365),
            issuer=current[Kind.SIGN].info, municipality=muni, profile=self.a.ee_profile,
            basic4=_basic4_of(self.a, self.items["valid-sign"])), prev.id)
        self.add("wrong-generation", der=wrong.public_bytes(serialization.Encoding.DER), issuer=current[Kind.SIGN],
                 serial=wrong.serial_number, signed_by=prev.label)

    def _never_issued_serial(self) -> int:
        with self.rt.store.session() as s:
            top = s.scalar(select(func.max(Certificate.serial))) or 0
        return top + 1_000_000_000  # far beyond the running counter

    def broken_artefacts(self) -> None:
        valid = self.items["valid-sign"]
        issuer = self.a.issuer(valid["kind"], valid["generation"])
        # A CRL that names the real CA and its key identifier but is signed with another key.
        crl = (x509.CertificateRevocationListBuilder().issuer_name(issuer.certificate.subject)
               .last_update(self.now).next_update(self.now + timedelta(days=1))
               .add_extension(x509.AuthorityKeyIdentifier(issuer.ski, None, None), critical=False)
               .add_extension(x509.CRLNumber(1), critical=False)
               .sign(self._impostor_key, hashes.SHA256()))
        rel = self.write("broken/bad-signature.crl", crl.public_bytes(serialization.Encoding.DER))
        self.add("broken-crl-bad-signature", der=_der(self.out, valid), issuer=issuer, serial=valid["serial"])
        self.items["broken-crl-bad-signature"]["files"]["crl"] = rel
        # The user-authentication CA's responder answering for a signature certificate.
        other = self.a.issuer("auth")
        wrong = ocsp_response(self.rt.keyring.responder_signer(other.id), issuer, valid["serial"],
                              self.now, self.now + timedelta(hours=1))
        rel = self.write("broken/wrong-responder.ocsp", wrong)
        self.add("broken-ocsp-wrong-responder", der=_der(self.out, valid), issuer=issuer, serial=valid["serial"])
        self.items["broken-ocsp-wrong-responder"]["files"]["ocsp_response"] = rel
        # The right responder, a day ago: nextUpdate has passed.  Signed with a keyring whose clock
        # is a day behind, so its responder certificate was valid when the response was produced.
        then = self.now - STALE_SHIFT
        old_keyring = Keyring(self.rt.store, self.rt.config, OffsetClock(self.rt.clock, -STALE_SHIFT))
        stale = ocsp_response(old_keyring.responder_signer(issuer.id), issuer, valid["serial"],
                              then, then + timedelta(hours=1))
        rel = self.write("broken/stale.ocsp", stale)
        self.add("broken-ocsp-stale", der=_der(self.out, valid), issuer=issuer, serial=valid["serial"])
        self.items["broken-ocsp-stale"]["files"]["ocsp_response"] = rel


def _generations(authority: Authority) -> dict[str, list[int]]:
    return {k: sorted(i.generation for i in authority.issuers() if i.kind == k and i.revoked_at is None)
            for k in names.KINDS}


def planned_changes(authority: Authority) -> list[str]:
    """What :func:`build` will change in ``authority``'s CA, one sentence each (the same
    decisions :meth:`Builder.previous_generation` takes)."""
    gens = _generations(authority)
    use = {k: g[-2] if len(g) >= 2 else g[-1] for k, g in gens.items()}
    # previous generation: one card, or two when the kinds' generations differ, plus a revoked
    # one; current generation: 11 cards; time-shifted: 2 (see Builder).
    holders = (3 if use[Kind.SIGN] != use[Kind.AUTH] else 2) + 11 + 2
    out = [(f"add {holders} holders with software cards and their certificates (some revoked, put on hold, "
            "or locked; one moved house)")]
    for kind in names.KINDS:
        g = gens[kind]
        if len(g) < 2:
            label = f"{kind}-g{g[-1]}"
            out.append(f"roll the {kind} CA over from {label} to {kind}-g{g[-1] + 1}: new certificates are issued by "
                       f"{kind}-g{g[-1] + 1} and `jpki-mock ca show --kind {kind} --pem` prints it; certificates "
                       f"issued before verify only against {label} (`--generation {g[-1]}`)")
    return out


def catalog_config_text(user: Any, port: int) -> str:
    """The catalog instance's ``config.toml``: the user's certificate shape (hierarchy,
    faithful, OCSP policy for unknown serials) and key passphrase, its own port."""
    return (
        "# jpki-mock configuration of the scenario catalog's own CA, written by `jpki-mock scenarios build`.\n"
        "# The passphrase protects its CA keys at rest (the same as the instance it was built beside).\n"
        f"key_passphrase = {user.key_passphrase!r}\n"
        f"hierarchy = {user.hierarchy!r}\n"
        f"faithful = {'true' if user.faithful else 'false'}\n"
        f"port = {port}\n"
        "\n[ocsp]\n"
        f"unknown_serial = {user.ocsp.unknown_serial!r}\n"
    )


def _der(out: Path, item: dict[str, Any]) -> bytes:
    return (out / item["files"]["der"]).read_bytes()


def _basic4_of(authority: Authority, item: dict[str, Any]):
    from jpki_mock.ca import basic4 as b4

    h = authority.get_holder(item["card"]["holder"])
    return b4.Basic4(h.name, h.date_of_birth, h.gender, h.address, h.name_flags, h.address_flags, h.municipality)


def ocsp_response(signer: ResponderSigner, issuer: Issuer, serial: int, this_update: datetime,
                  next_update: datetime) -> bytes:
    """A 'good' BasicOCSPResponse (RFC 6960 section 4.2.1) for one CertID, signed by ``signer``:
    the broken artefacts need responses the real responder would never send."""
    cert_id = asn1_ocsp.CertId({
        "hash_algorithm": {"algorithm": "sha1"},
        "issuer_name_hash": issuer.name_hash["sha1"], "issuer_key_hash": issuer.key_hash["sha1"],
        "serial_number": serial,
    })
    single = asn1_ocsp.SingleResponse({
        "cert_id": cert_id, "cert_status": asn1_ocsp.CertStatus(name="good", value=core.Null()),
        "this_update": this_update, "next_update": next_update,
    })
    data = asn1_ocsp.ResponseData({
        "responder_id": asn1_ocsp.ResponderId(name="by_key", value=signer.key_hash),
        "produced_at": this_update, "responses": [single],
    })
    basic = {"tbs_response_data": data, "signature_algorithm": {"algorithm": "sha256_rsa"},
             "signature": signer.sign(data.dump())}
    if signer.certificate_der:
        basic["certs"] = [asn1_x509.Certificate.load(signer.certificate_der)]
    return asn1_ocsp.OCSPResponse({
        "response_status": "successful",
        "response_bytes": {"response_type": "basic_ocsp_response", "response": asn1_ocsp.BasicOCSPResponse(basic)},
    }).dump()


@audit.operation("scenarios.build", "{out}")
def build(rt: Any, out: Path, progress: bool = True) -> dict[str, Any]:
    """Build the catalog in ``rt``'s CA and write it under ``out``; returns the manifest."""
    return Builder(rt, Path(out), progress).build()

