"""Publishing: scopes, numbering, delta, ARL, expiry, and refusals that leave the served CRL intact."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_mock.config import CrlConfig
from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream, check_crl
from jpki_mock.errors import InvalidInput, PublishError, UnknownIssuer
from jpki_mock.runtime import Runtime
from tests.support.crl import entries, parse


def _stream(rt, kind, scope, generation=None, delta=False):
    return Stream(rt.authority.issuer(kind, generation), scope, delta)


def _published(pub, stream) -> bytes:
    return pub.current_file(stream).read_bytes()


def _crldp(cert_der: bytes):
    return ax509.Certificate.load(cert_der).crl_distribution_points_value[0]["distribution_point"]


def _ext(crl_bytes: bytes, name: str):
    for ext in parse(crl_bytes)["tbs_cert_list"]["crl_extensions"]:
        if ext["extn_id"].native == name:
            return ext
    return None


def test_full_and_partition_crls(rt, issue):
    tokyo, osaka = issue("13101"), issue("27100")
    rt.authority.revoke("sign", tokyo["sign"].serial, "keyCompromise")
    rt.authority.revoke("auth", osaka["auth"].serial, "certificateHold")
    pub = Publisher(CrlDeps.of(rt))
    published = pub.publish_many(pub.streams())
    # Per kind: full, ARL and the partitions in use (13101 and 27100), not all ~1,900 municipalities.
    assert sorted(s.label for s, _ in published) == sorted(
        f"{k}-g1/{scope}" for k in ("sign", "auth") for scope in ("full", "arl", "13101", "27100"))

    assert entries(_published(pub, _stream(rt, "sign", "full"))) == {tokyo["sign"].serial: "key_compromise"}
    assert entries(_published(pub, _stream(rt, "sign", "13101"))) == {tokyo["sign"].serial: "key_compromise"}
    assert entries(_published(pub, _stream(rt, "sign", "27100"))) == {}
    assert entries(_published(pub, _stream(rt, "auth", "27100"))) == {osaka["auth"].serial: "certificate_hold"}
    assert _ext(_published(pub, _stream(rt, "sign", "full")), "issuing_distribution_point") is None

    # The partition's IDP is exactly the DistributionPoint in that municipality's certificates
    # (directoryName and HTTP URI), so RFC 5280 section 6.3.3 (b)(2) scope matching succeeds.
    for kind in ("sign", "auth"):
        crl = _published(pub, _stream(rt, kind, "13101"))
        idp = _ext(crl, "issuing_distribution_point")["extn_value"].parsed
        assert idp["distribution_point"].dump() == _crldp(tokyo[kind].der).dump()
        assert idp["only_contains_user_certs"].native is True
        names = [n.name for n in idp["distribution_point"].chosen]
        assert names == ["directory_name", "uniform_resource_identifier"]
        aki = _ext(crl, "authority_key_identifier")["extn_value"].parsed["key_identifier"].native
        assert aki == rt.authority.issuer(kind).ski


def test_numbers_increase_per_scope_and_are_archived(rt):
    pub = Publisher(CrlDeps.of(rt))
    full, tokyo = _stream(rt, "sign", "full"), _stream(rt, "sign", "13101")
    assert [pub.publish(full).number for _ in range(3)] == [1, 2, 3]
    assert pub.publish(tokyo).number == 1
    for n in (1, 2, 3):
        archived = pub.archive_file(full, n).read_bytes()
        assert parse(archived).crl_number_value.native == n
    assert pub.archive_file(full, 3).read_bytes() == _published(pub, full)
    assert [r.number for r in pub.records(full)] == [1, 2, 3]


def test_archive_keep_prunes_old_numbers(config, clock):
    runtime = Runtime.open(config.replace(crl=CrlConfig(archive_keep=2)), clock)
    runtime.authority.init()
    try:
        pub = Publisher(CrlDeps.of(runtime))
        full = Stream(runtime.authority.issuer("auth"), "full")
        for _ in range(4):
            pub.publish(full)
        assert sorted(p.name for p in pub.archive_file(full, 1).parent.iterdir()) == ["3.crl", "4.crl"]
    finally:
        runtime.close()


def test_arl_lists_revoked_ca_generations(rt):
    g1 = rt.authority.issuer("sign", 1)
    rt.authority.rollover("sign")
    rt.authority.revoke_ca("sign", 1, "cACompromise", "sign-g1")
    pub = Publisher(CrlDeps.of(rt))
    for generation in (1, 2):
        stream = _stream(rt, "sign", "arl", generation)
        pub.publish(stream)
        arl = _published(pub, stream)
        assert entries(arl) == {g1.certificate.serial_number: "ca_compromise"}
        idp = _ext(arl, "issuing_distribution_point")["extn_value"].parsed
        assert idp["only_contains_ca_certs"].native is True
        # The roots' CRLDP names the CA's own DN (no URI): the ARL's IDP names the same.
        assert idp["distribution_point"].dump() == _crldp(stream.issuer.der).dump()
    auth_arl = _stream(rt, "auth", "arl")
    pub.publish(auth_arl)
    assert entries(_published(pub, auth_arl)) == {}


@pytest.fixture
def delta_rt(config, clock):
    runtime = Runtime.open(config.replace(crl=CrlConfig(delta=True)), clock)
    runtime.authority.init()
    yield runtime
    runtime.close()


def test_delta_plus_base_equals_a_new_complete_crl(delta_rt, issue, clock):
    a, b, c, d = (issue("13101", runtime=delta_rt) for _ in range(4))
    ra = delta_rt.authority
    ra.revoke("sign", a["sign"].serial, "keyCompromise")
    ra.revoke("sign", c["sign"].serial, "certificateHold")
    pub = Publisher(CrlDeps.of(delta_rt))
    full = _stream(delta_rt, "sign", "full")
    base = pub.publish(full)
    base_der = _published(pub, full)
    freshest = _ext(base_der, "freshest_crl")["extn_value"].parsed
    assert freshest[0]["distribution_point"].chosen[0].native.endswith("/crl/sign/g1/full-delta.crl")

    clock.advance(minutes=5)
    ra.revoke("sign", b["sign"].serial, "superseded")
    ra.revoke("sign", c["sign"].serial, "keyCompromise")  # a hold becomes a revocation: same date, new reason
    ra.revoke("sign", d["sign"].serial, "certificateHold")
    delta_stream = Stream(full.issuer, "full", True)
    delta = pub.publish(delta_stream)
    delta_der = _published(pub, delta_stream)
    assert delta.number == base.number + 1  # one numbering sequence per scope (RFC 5280 section 5.2.3)
    indicator = _ext(delta_der, "delta_crl_indicator")
    assert indicator["critical"].native is True and indicator["extn_value"].parsed.native == base.number
    assert entries(delta_der) == {b["sign"].serial: "superseded", c["sign"].serial: "key_compromise",
                                  d["sign"].serial: "certificate_hold"}

    merged = {**entries(base_der), **entries(delta_der)}
    pub.publish(full)
    assert merged == entries(_published(pub, full))


def test_delta_needs_a_base(delta_rt):
    pub = Publisher(CrlDeps.of(delta_rt))
    with pytest.raises(Exception, match="no complete CRL"):
        pub.publish(Stream(delta_rt.authority.issuer("auth"), "13101", True))


def test_expired_certificates_leave_after_one_period(rt, issue, clock):
    cert = issue("13101", "auth")["auth"]
    rt.authority.revoke("auth", cert.serial, "cessationOfOperation")
    pub = Publisher(CrlDeps.of(rt))
    stream = _stream(rt, "auth", "13101")
    cfg = rt.config.crl
    clock.set(cert.not_after + timedelta(seconds=1))
    pub.publish(stream)
    assert cert.serial in entries(_published(pub, stream))  # expired, but on one CRL issued after notAfter
    clock.set(cert.not_after + timedelta(seconds=cfg.period_seconds + cfg.grace_seconds + 1))
    pub.publish(stream)
    assert entries(_published(pub, stream)) == {}


class WrongKeySigner:
    from jpki_mock.ca.signer import SHA256_RSA_ALGORITHM as algorithm_der

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sign_prehashed(self, digest):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils
        return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def _leftovers(pub, stream):
    return [p.name for p in pub.current_file(stream).parent.iterdir() if p.name.startswith(".")]


def test_a_crl_that_fails_its_checks_is_not_published(rt, monkeypatch):
    pub = Publisher(CrlDeps.of(rt))
    stream = _stream(rt, "sign", "full")
    pub.publish(stream)
    before = _published(pub, stream)
    monkeypatch.setattr(rt.keyring, "ca_signer", lambda issuer_id: WrongKeySigner())
    with pytest.raises(PublishError, match="signature does not verify with sign-g1's key"):
        pub.publish(stream)
    assert _published(pub, stream) == before
    assert pub.latest(stream).number == 1 and not pub.archive_file(stream, 2).exists()
    assert _leftovers(pub, stream) == []


def test_a_crash_while_streaming_leaves_the_previous_crl(rt, issue, monkeypatch):
    cert = issue("13101", "auth")["auth"]
    rt.authority.revoke("auth", cert.serial, "keyCompromise")
    pub = Publisher(CrlDeps.of(rt))
    stream = _stream(rt, "auth", "full")
    pub.publish(stream)
    before = _published(pub, stream)

    def broken(*args, **kwargs):
        yield (cert.serial, 1_700_000_000, 1)
        raise ConnectionError("database went away")

    monkeypatch.setattr(rt.status, "revoked_rows", broken)
    with pytest.raises(ConnectionError):
        pub.publish(stream)
    assert _published(pub, stream) == before
    assert _leftovers(pub, stream) == []


def test_check_crl_names_each_failure(rt):
    pub = Publisher(CrlDeps.of(rt))
    stream = _stream(rt, "sign", "full")
    rec = pub.publish(stream)
    data = _published(pub, stream)
    issuer = stream.issuer
    good = {"issuer": issuer, "number": 1, "last_number": 0, "this_update": rec.this_update,
            "next_update": rec.next_update, "entries": 0, "delta_base": None, "scoped": False}
    check_crl(data, **good)
    cases = [
        ({"last_number": 1}, "crl_number: cRLNumber 1 is not greater than the last published 1"),
        ({"issuer": rt.authority.issuer("auth")}, "signature does not verify"),
        ({"entries": 3}, "0 entries parsed, 3 written"),
        ({"scoped": True}, "issuingDistributionPoint"),
        ({"delta_base": 4}, "deltaCRLIndicator is None"),
    ]
    for change, message in cases:
        with pytest.raises(PublishError, match=message):
            check_crl(data, **{**good, **change})
    with pytest.raises(PublishError, match="does not parse"):
        check_crl(data[:-10], **good)


def test_select_rejects_bad_names(rt):
    pub = Publisher(CrlDeps.of(rt))
    with pytest.raises(InvalidInput, match="'99999' is not a CRL partition"):
        pub.select(partition="99999")
    with pytest.raises(UnknownIssuer):
        pub.select(ca="sign-g9")
    with pytest.raises(InvalidInput, match="delta CRLs are not enabled"):
        pub.select(delta=True)
    assert [s.label for s in pub.select(ca="auth-g1", partition="13101")] == ["auth-g1/13101"]


def test_published_dates_on_both_databases(db_rt, issue):
    """revoked_rows turns timestamps into epoch seconds in SQL: same dates on SQLite and PostgreSQL."""
    cert = issue("27100", "auth", runtime=db_rt)["auth"]
    revoked = db_rt.authority.revoke("auth", cert.serial, "affiliationChanged")
    pub = Publisher(CrlDeps.of(db_rt))
    stream = _stream(db_rt, "auth", "27100")
    pub.publish(stream)
    (rc,) = list(parse(_published(pub, stream))["tbs_cert_list"]["revoked_certificates"])
    assert rc["user_certificate"].native == cert.serial
    assert rc["revocation_date"].native == revoked.revoked_at


def test_faithful_mode_partitions_name_only_the_directory_name(config, clock, issue):
    """Faithful certificates carry only the directoryName CRLDP (docs/sources.md section 3); the
    partition's IDP must match it."""
    runtime = Runtime.open(config.replace(faithful=True), clock)
    runtime.authority.init()
    try:
        cert = issue("27100", "sign", runtime=runtime)["sign"]
        pub = Publisher(CrlDeps.of(runtime))
        stream = _stream(runtime, "sign", "27100")
        pub.publish(stream)
        idp = _ext(_published(pub, stream), "issuing_distribution_point")["extn_value"].parsed
        assert [n.name for n in idp["distribution_point"].chosen] == ["directory_name"]
        assert idp["distribution_point"].dump() == _crldp(cert.der).dump()
    finally:
        runtime.close()
