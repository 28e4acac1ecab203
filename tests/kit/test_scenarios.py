"""The scenario catalog, checked offline: every artefact parsed back by independent code
(asn1crypto, openssl) and every state read back from the store.  The online checks against a
running server (openssl verify/ocsp, pyhanko) are tests/interop/test_matrix.py."""

from __future__ import annotations

import json
import subprocess

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs12

from jpki_mock.ca.status import REASON_NAMES
from jpki_mock.kit.card import CardService
from jpki_mock.kit.scenarios import CATALOG, build


@pytest.fixture(scope="module")
def built(kit_rt, tmp_path_factory):
    out = tmp_path_factory.mktemp("scenarios")
    manifest = build(kit_rt, out, progress=False)
    return out, manifest


def items(manifest):
    return {i["name"]: i for i in manifest["items"]}


def load(out, rel):
    return x509.load_der_x509_certificate((out / rel).read_bytes())


def test_manifest_lists_every_catalog_item_with_existing_files(built):
    out, manifest = built
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert [i["name"] for i in manifest["items"]] == [s.name for s in CATALOG]
    for item in manifest["items"]:
        for rel in item["files"].values():
            assert (out / rel).is_file(), (item["name"], rel)
        assert item["expected"]["outcome"] in manifest["outcomes"]
        if "pem" in item["files"]:
            pem = x509.load_pem_x509_certificate((out / item["files"]["pem"]).read_bytes())
            assert pem.serial_number == item["serial"]
    trust = x509.load_pem_x509_certificates((out / manifest["trust_pem"]).read_bytes())
    assert len(trust) == len(manifest["issuers"]) >= 4  # two kinds, at least two generations each


def test_states_in_the_store_match_the_manifest(kit_rt, built):
    _, manifest = built
    by_label = {i.label: i for i in kit_rt.authority.issuers()}
    now = kit_rt.clock.now()
    for item in manifest["items"]:
        if item["issuer"] not in by_label or item["name"].startswith(("wrong-", "never-", "broken-")):
            continue
        status = kit_rt.status.lookup(by_label[item["issuer"]].id, item["serial"])
        outcome = item["expected"]["outcome"]
        if outcome == "revoked":
            assert status.status == "revoked", item["name"]
            assert REASON_NAMES[status.reason] == item["expected"]["reason"], item["name"]
        else:
            assert status.status == "good", item["name"]
        if outcome == "expired":
            assert status.not_after < now
        if outcome == "not_yet_valid":
            assert status.not_before > now


def test_generations(kit_rt, built):
    out, manifest = built
    it = items(manifest)
    for kind in ("sign", "auth"):
        current = it[f"valid-{kind}"]
        previous = it[f"valid-{kind}-previous-generation"]
        assert previous["generation"] == current["generation"] - 1
        # Same issuer DN, different key: the AKI names the generation.
        cur, prev = load(out, current["files"]["der"]), load(out, previous["files"]["der"])
        assert cur.issuer == prev.issuer
        aki = lambda c: c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier  # noqa: E731
        assert aki(cur) != aki(prev)


def test_moved_holder_keeps_auth_and_gets_a_new_sign(built):
    out, manifest = built
    it = items(manifest)
    assert it["moved-sign"]["expected"] == {"outcome": "revoked", "reason": "affiliationChanged"}
    assert it["moved-auth"]["expected"] == {"outcome": "valid"}
    new = load(out, it["moved-new-sign"]["files"]["der"])
    san = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = [o.value for o in san.get_values_for_type(x509.OtherName)]
    assert any("大阪府大阪市北区梅田".encode() in v for v in addresses)


def test_locked_card_and_minor(kit_rt, built):
    _, manifest = built
    it = items(manifest)
    cards = CardService(kit_rt.authority)
    state = cards.state(it["locked-card-sign"]["card"]["holder"]).as_dict()
    assert state["sign"]["locked"] and state["auth"]["locked"]
    minor = cards.state(it["minor-auth"]["card"]["holder"]).as_dict()
    assert minor["sign"] is None and it["minor-auth"]["sign_certificate"] is None


def test_pkcs12_bundles_open_with_the_manifest_passphrase(built):
    out, manifest = built
    opened = 0
    for item in manifest["items"]:
        if "pkcs12" not in item["files"]:
            continue
        key, cert, _chain = pkcs12.load_key_and_certificates((out / item["files"]["pkcs12"]).read_bytes(),
                                                            item["pkcs12_passphrase"].encode())
        assert cert.serial_number == item["serial"]
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        opened += 1
    assert opened >= 15


def openssl_verify(out, manifest, item, *extra):
    return subprocess.run(["openssl", "verify", "-CAfile", str(out / manifest["trust_pem"]), *extra,
                           str(out / item["files"]["pem"])], capture_output=True, text=True)


@pytest.mark.parametrize("name,error", [
    ("valid-sign", None), ("valid-auth-previous-generation", None),
    ("expired-sign", "certificate has expired"), ("not-yet-valid-auth", "certificate is not yet valid"),
    ("unknown-issuer", "unable to get local issuer certificate"),
    ("wrong-generation", "certificate signature failure"),
])
def test_paths_without_revocation_by_openssl(built, name, error):
    out, manifest = built
    res = openssl_verify(out, manifest, items(manifest)[name])
    if error is None:
        assert res.returncode == 0, res.stdout + res.stderr
    else:
        assert res.returncode != 0 and error in res.stdout + res.stderr


def test_bad_crl_signature_by_openssl(built):
    out, manifest = built
    item = items(manifest)["broken-crl-bad-signature"]
    res = openssl_verify(out, manifest, item, "-crl_check", "-CRLfile", str(out / item["files"]["crl"]))
    assert res.returncode != 0 and "CRL signature failure" in res.stdout + res.stderr


def test_wrong_generation_verifies_only_under_the_previous_key(kit_rt, built):
    out, manifest = built
    item = items(manifest)["wrong-generation"]
    cert = load(out, item["files"]["der"])
    current = kit_rt.authority.issuer("sign")
    previous = kit_rt.authority.issuer("sign", current.generation - 1)
    check = lambda issuer: issuer.certificate.public_key().verify(  # noqa: E731
        cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    check(previous)
    with pytest.raises(InvalidSignature):
        check(current)


def _basic(out, item):
    resp = asn1_ocsp.OCSPResponse.load((out / item["files"]["ocsp_response"]).read_bytes())
    return resp["response_bytes"]["response"].parsed


def test_broken_ocsp_responses(kit_rt, built):
    out, manifest = built
    it = items(manifest)
    now = kit_rt.clock.now()
    stale = _basic(out, it["broken-ocsp-stale"])["tbs_response_data"]["responses"][0]
    assert stale["next_update"].native < now
    assert stale["cert_id"]["serial_number"].native == it["valid-sign"]["serial"]
    wrong = _basic(out, it["broken-ocsp-wrong-responder"])
    signer = x509.load_der_x509_certificate(wrong["certs"][0].dump())
    sign_ca = kit_rt.authority.issuer("sign").certificate
    assert signer.issuer == kit_rt.authority.issuer("auth").certificate.subject != sign_ca.subject
    wrong_responder = out / it["broken-ocsp-wrong-responder"]["files"]["ocsp_response"]
    res = subprocess.run(["openssl", "ocsp", "-respin", str(wrong_responder),
                          "-issuer", str(out / it["valid-sign"]["files"]["issuer_pem"]),
                          "-CAfile", str(out / manifest["trust_pem"]),
                          "-cert", str(out / it["valid-sign"]["files"]["pem"])], capture_output=True, text=True)
    assert "Response Verify Failure" in res.stdout + res.stderr


def test_second_build_reuses_the_generations(kit_rt, built, tmp_path):
    before = len(kit_rt.authority.issuers())
    manifest = build(kit_rt, tmp_path / "again", progress=False)
    assert len(kit_rt.authority.issuers()) == before
    again = items(manifest)
    assert again["valid-sign-previous-generation"]["generation"] == again["valid-sign"]["generation"] - 1
    assert [i["expected"] for i in manifest["items"]] == [i["expected"] for i in built[1]["items"]]
