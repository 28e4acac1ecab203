"""End-entity certificates parsed back by asn1crypto and checked with openssl (docs/sources.md section 3)."""

import subprocess
from datetime import datetime

import pytest
from asn1crypto import core, parser
from asn1crypto import x509 as ax509

from jpki_mock.clock import UTC
from tests.support import HOLDER

SAN_OIDS = ["1.2.392.200149.8.5.5.1", "1.2.392.200149.8.5.5.4", "1.2.392.200149.8.5.5.3",
            "1.2.392.200149.8.5.5.5", "1.2.392.200149.8.5.5.2", "1.2.392.200149.8.5.5.6"]


def parse(der: bytes) -> ax509.Certificate:
    return ax509.Certificate.load(der)


def exts(cert: ax509.Certificate):
    return [(e["extn_id"].dotted, e["critical"].native, e["extn_value"].parsed)
            for e in cert["tbs_certificate"]["extensions"]]


@pytest.fixture
def issued(rt):
    holder = rt.authority.create_holder({**HOLDER, "name_flags": "00100", "address": "東京都千代田区千代田1-1"})
    items = rt.authority.issue(holder.id, "both", pkcs12_passphrase="pass1234")
    return holder, {i.certificate.kind: i for i in items}


def test_signature_certificate_fields(rt, issued):
    _holder, items = issued
    cert = parse(items["sign"].certificate.der)
    tbs = cert["tbs_certificate"]
    subject = [(atv["type"].dotted, atv["value"].native) for rdn in tbs["subject"].chosen for atv in rdn]
    assert subject[:3] == [("2.5.4.6", "JP"), ("2.5.4.7", "Tokyo-to"), ("2.5.4.7", "Chiyoda-ku")]
    assert subject[3][0] == "2.5.4.3" and subject[3][1].endswith("13101")
    assert tbs["issuer"].dump() == parse(rt.authority.issuer("sign").der)["tbs_certificate"]["subject"].dump()
    e = exts(cert)
    assert [x[0] for x in e] == ["2.5.29.15", "2.5.29.32", "2.5.29.17", "2.5.29.18", "2.5.29.31",
                                 "1.3.6.1.5.5.7.1.1", "2.5.29.35", "2.5.29.14"]
    ku = e[0]
    assert ku[1] is True and ku[2].native == {"digital_signature", "non_repudiation"}
    pol = e[1]
    assert pol[1] is True and pol[2][0]["policy_identifier"].dotted == "1.2.392.200149.8.5.1.1.20"
    assert pol[2][0]["policy_qualifiers"][0]["qualifier"].native == rt.config.public_url + "/cps"
    san = e[2]
    assert san[1] is False
    names = [(gn.chosen["type_id"].dotted, gn.chosen["value"]) for gn in san[2]]
    assert [n[0] for n in names] == SAN_OIDS
    # otherName value is [0] EXPLICIT; inside, every value is a UTF8String (tag 12).
    tagged = [parser.parse(v.dump()) for _, v in names]
    assert all(t[0] == 2 and t[2] == 0 for t in tagged)  # context-specific [0]
    inner = [core.load(t[4]) for t in tagged]
    assert all(isinstance(v, core.UTF8String) for v in inner)
    values = [v.native for v in inner]
    assert values == ["山田\u3000太郎", "319801231", "1", "東京都千代田区千代田1-1", "00100",
                      "0" * len("東京都千代田区千代田1-1")]
    ian = e[3][2][0].chosen
    assert [atv["value"].native for rdn in ian.chosen for atv in rdn] == [
        "JP", "公的個人認証サービス", "公的個人認証サービス署名用", "地方公共団体情報システム機構"]
    dp = e[4][2][0]["distribution_point"].chosen
    dn = [atv["value"].native for rdn in dp[0].chosen.chosen for atv in rdn]
    assert dn == ["JP", "JPKI", "JPKI for digital signature", "CRL Distribution Points", "Tokyo-to", "Chiyoda-ku CRLDP"]
    assert dp[1].native == rt.config.public_url + "/crl/sign/g1/13101.crl"
    aia = e[5][2][0]
    assert aia["access_method"].native == "ocsp" and aia["access_location"].native == rt.config.public_url + "/ocsp"
    assert e[6][2]["key_identifier"].native == rt.authority.issuer("sign").ski
    # Validity: until the 5th birthday after issuance (31 Dec; issued 26 Nov 2026 -> 31 Dec 2030), 14:59:59Z.
    assert tbs["validity"]["not_after"].native == datetime(2030, 12, 31, 14, 59, 59, tzinfo=UTC)


def test_user_auth_certificate_has_no_personal_data(rt, issued):
    _, items = issued
    cert = parse(items["auth"].certificate.der)
    subject = [(atv["type"].dotted, atv["value"].native)
               for rdn in cert["tbs_certificate"]["subject"].chosen for atv in rdn]
    assert [s[0] for s in subject] == ["2.5.4.6", "2.5.4.3"]
    assert len(subject[1][1]) == 23 and subject[1][1].isalnum()
    e = exts(cert)
    assert "2.5.29.17" not in [x[0] for x in e]
    assert e[0][2].native == {"digital_signature"}
    assert e[1][2][0]["policy_identifier"].dotted == "1.2.392.200149.8.5.1.3.30"
    dn = [atv["value"].native for rdn in e[3][2][0]["distribution_point"].chosen[0].chosen.chosen for atv in rdn]
    assert dn[2] == "JPKI for user authentication"


def test_faithful_mode_has_no_uri_and_no_aia(rt_factory):
    runtime = rt_factory(faithful=True)
    holder = runtime.authority.create_holder(HOLDER)
    item = runtime.authority.issue(holder.id, "sign", pkcs12_passphrase="pass1234")[0]
    e = exts(parse(item.certificate.der))
    assert "1.3.6.1.5.5.7.1.1" not in [x[0] for x in e]
    dp = next(x for x in e if x[0] == "2.5.29.31")[2][0]["distribution_point"].chosen
    assert [gn.name for gn in dp] == ["directory_name"]


def test_validity_capped_by_card_expiry(rt):
    holder = rt.authority.create_holder({**HOLDER, "card_expiry": "2028-03-01"})
    item = rt.authority.issue(holder.id, "auth", pkcs12_passphrase="pass1234")[0]
    assert parse(item.certificate.der)["tbs_certificate"]["validity"]["not_after"].native == \
        datetime(2028, 3, 1, 14, 59, 59, tzinfo=UTC)


def verify(tmp_path, ca_pem: str, cert_pem: str) -> subprocess.CompletedProcess:
    (tmp_path / "ca.pem").write_text(ca_pem)
    (tmp_path / "ee.pem").write_text(cert_pem)
    return subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "ee.pem")],
                          capture_output=True, text=True)


def test_openssl_verifies_both_kinds_and_generations(rt, tmp_path):
    from jpki_mock.ca.authority import der_to_pem

    first = rt.authority.create_holder(HOLDER)
    gen1 = {i.certificate.kind: i for i in rt.authority.issue(first.id, "both", pkcs12_passphrase="pass1234")}
    rt.authority.rollover("sign")
    rt.authority.rollover("auth")
    second = rt.authority.create_holder({**HOLDER, "name": "佐藤\u3000花子", "gender": "2"})
    gen2 = {i.certificate.kind: i for i in rt.authority.issue(second.id, "both", pkcs12_passphrase="pass1234")}
    for kind in ("sign", "auth"):
        assert gen1[kind].issuer.generation == 1 and gen2[kind].issuer.generation == 2
        for items, gen in ((gen1, 1), (gen2, 2)):
            ca_pem = rt.authority.issuer(kind, gen).pem
            res = verify(tmp_path, ca_pem, der_to_pem(items[kind].certificate.der))
            assert res.returncode == 0, res.stderr
            assert res.stdout.strip().endswith("OK")
        # Same DN, different key: the other generation must NOT verify it.
        res = verify(tmp_path, rt.authority.issuer(kind, 2).pem, der_to_pem(gen1[kind].certificate.der))
        assert res.returncode != 0
    # An older generation's certificate stays revocable.
    rt.authority.revoke("sign-g1", gen1["sign"].certificate.serial, "keyCompromise")
    assert rt.status.lookup(gen1["sign"].issuer.id, gen1["sign"].certificate.serial).reason == 1


def test_pkcs12_opens_with_passphrase_and_holds_key_and_cert(rt, issued, tmp_path):
    _, items = issued
    path = tmp_path / "sign.p12"
    path.write_bytes(items["sign"].pkcs12)
    out = subprocess.run(["openssl", "pkcs12", "-in", str(path), "-passin", "pass:pass1234", "-nodes", "-info"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "BEGIN PRIVATE KEY" in out.stdout and "BEGIN CERTIFICATE" in out.stdout
    bad = subprocess.run(["openssl", "pkcs12", "-in", str(path), "-passin", "pass:wrong", "-nodes"],
                         capture_output=True, text=True)
    assert bad.returncode != 0
