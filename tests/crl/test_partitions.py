"""CRL partitions for any municipality of the official list, not only the mock's first 26."""

from __future__ import annotations

import pytest
from asn1crypto import x509 as ax509
from werkzeug.test import Client

from jpki_mock import municipalities
from jpki_mock.crl.http import make_app
from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream
from jpki_mock.errors import InvalidInput
from tests.support.crl import entries, parse


def _crldp(cert_der: bytes) -> ax509.DistributionPoint:
    return ax509.Certificate.load(bytes(cert_der)).crl_distribution_points_value[0]


@pytest.mark.parametrize("code", ["13105", "01584", "13381", "27127"])
def test_issue_revoke_publish_and_find_the_serial_on_the_partition(rt, issue, code):
    """文京区, a town written with its district (虻田郡洞爺湖町), an island village (三宅島三宅村) and a
    designated city's ward (大阪市北区): issue there, revoke, publish the default streams, and read
    the serial back from that municipality's partition CRL, over HTTP, with asn1crypto."""
    muni = municipalities.get(code)
    certs = issue(code)
    assert {c.municipality for c in certs.values()} == {code}
    rt.authority.revoke("sign", certs["sign"].serial, "keyCompromise")
    pub = Publisher(CrlDeps.of(rt))
    published = {s.label for s, _ in pub.publish_many(pub.streams())}
    assert f"sign-g1/{code}" in published and f"auth-g1/{code}" in published

    resp = Client(make_app(CrlDeps.of(rt))).get(f"/sign/g1/{code}.crl")  # the app serves /crl/...
    assert resp.status_code == 200
    body = resp.data
    assert entries(body) == {certs["sign"].serial: "key_compromise"}
    crl = parse(body)
    idp = next(e for e in crl["tbs_cert_list"]["crl_extensions"] if e["extn_id"].native == "issuing_distribution_point")
    dp = _crldp(certs["sign"].der)["distribution_point"]
    assert idp["extn_value"].parsed["distribution_point"].dump() == dp.dump()  # RFC 5280 section 6.3.3 (b)(2)
    dirname = dp.chosen[0].chosen.native
    assert dirname["common_name"] == f"{muni.name_en} CRLDP"
    assert dirname["organizational_unit_name"][-1] == muni.prefecture_en
    # The auth partition lists nothing: only the signature certificate was revoked.
    auth = Publisher(CrlDeps.of(rt)).current_file(Stream(rt.authority.issuer("auth"), code)).read_bytes()
    assert entries(auth) == {}


def test_a_partition_no_certificate_names_is_published_on_request_only(rt, issue):
    issue("13101")
    pub = Publisher(CrlDeps.of(rt))
    assert "47382" not in {s.scope for s in pub.streams()}  # 与那国町: no certificate there
    (stream,) = pub.select("sign-g1", "47382", delta=False)
    assert pub.publish(stream).entries == 0 and entries(pub.current_file(stream).read_bytes()) == {}
    assert "47382" in {s.scope for s in pub.streams()}  # published once, kept fresh from then on


def test_unknown_partition_names_real_codes_nearby(rt):
    pub = Publisher(CrlDeps.of(rt))
    with pytest.raises(InvalidInput) as err:
        pub.select("sign", "13199")
    assert err.value.field == "partition" and "13201 東京都八王子市" in err.value.allowed


def test_a_new_municipalitys_partition_is_fetchable_at_once_from_its_crl_distribution_point(rt, issue):
    """The schedule publishes the partitions in use when it runs; a certificate issued after that
    in a municipality nobody used names a partition with no CRL yet.  Fetching it publishes it
    (once, whatever the number of workers asking), as J-LIS has every municipality's CRL."""
    pub = Publisher(CrlDeps.of(rt))
    pub.publish_many(pub.streams())  # the schedule's run: full, arl and the partitions in use (none yet)
    certs = issue("13105")  # 文京区, after that run
    uri = _crldp(certs["sign"].der)["distribution_point"].chosen[1].chosen.native
    path = uri.split("/crl", 1)[1]
    assert path == "/sign/g1/13105.crl"
    client = Client(make_app(CrlDeps.of(rt)))
    first = client.get(path)
    assert first.status_code == 200
    crl = parse(first.data)
    assert entries(first.data) == {}
    idp = next(e for e in crl["tbs_cert_list"]["crl_extensions"] if e["extn_id"].native == "issuing_distribution_point")
    dp = _crldp(certs["sign"].der)["distribution_point"]
    assert idp["extn_value"].parsed["distribution_point"].dump() == dp.dump()  # RFC 5280 section 6.3.3 (b)(2)
    # Asked again: the same CRL, not a second number.
    again = client.get(path)
    assert again.data == first.data
    assert [r.number for r in pub.records(Stream(rt.authority.issuer("sign"), "13105"))] == [1]
