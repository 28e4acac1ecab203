"""HTTP distribution through the WSGI app (werkzeug's test client): formats, caching, errors, access control."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from email.utils import format_datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from werkzeug.test import Client

from jpki_mock.config import CrlConfig
from jpki_mock.crl.http import make_app
from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream
from jpki_mock.runtime import Runtime
from tests.support.crl import entries


@pytest.fixture
def published(rt, issue):
    cert = issue("13101", "sign")["sign"]
    rt.authority.revoke("sign", cert.serial, "keyCompromise")
    pub = Publisher(CrlDeps.of(rt))
    for scope in ("full", "13101"):
        pub.publish(Stream(rt.authority.issuer("sign"), scope))
    return cert


@pytest.fixture
def client(rt):
    return Client(make_app(CrlDeps.of(rt)))


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory):
    """One published CA for the read-only tests (initialising a CA costs two RSA key generations)."""
    from jpki_mock.clock import UTC, FixedClock
    from jpki_mock.config import load_config

    config = load_config({}, data_dir=tmp_path_factory.mktemp("http") / "data", key_passphrase="shared-http")
    runtime = Runtime.open(config, FixedClock(datetime(2026, 11, 26, 3, 0, 0, tzinfo=UTC)))
    runtime.authority.init()
    Publisher(CrlDeps.of(runtime)).publish(Stream(runtime.authority.issuer("sign"), "full"))
    yield Client(make_app(CrlDeps.of(runtime)))
    runtime.close()


def test_der_and_pem_with_caching_headers(rt, client, published, clock):
    resp = client.get("/sign/g1/13101.crl")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/pkix-crl"
    assert entries(resp.data) == {published.serial: "key_compromise"}
    crl = x509.load_der_x509_crl(resp.data)
    assert resp.headers["Last-Modified"] == format_datetime(crl.last_update_utc, usegmt=True)
    assert resp.headers["Expires"] == format_datetime(crl.next_update_utc, usegmt=True)
    max_age = int((crl.next_update_utc - clock.now()).total_seconds())
    assert resp.headers["Cache-Control"] == f"public, no-transform, must-revalidate, max-age={max_age}"
    assert int(resp.headers["Content-Length"]) == len(resp.data)

    pem = client.get("/sign/g1/13101.pem")
    assert pem.headers["Content-Type"] == "application/x-pem-file"
    assert int(pem.headers["Content-Length"]) == len(pem.data)
    assert x509.load_pem_x509_crl(pem.data).public_bytes(Encoding.DER) == resp.data
    lines = pem.data.decode().splitlines()
    assert lines[0] == "-----BEGIN X509 CRL-----" and lines[-1] == "-----END X509 CRL-----"
    assert all(len(line) <= 64 for line in lines[1:-1])
    assert base64.b64decode("".join(lines[1:-1])) == resp.data
    assert pem.headers["ETag"] != resp.headers["ETag"]

    head = client.head("/sign/g1/13101.crl")
    assert head.status_code == 200 and head.data == b"" and head.headers["ETag"] == resp.headers["ETag"]


def test_conditional_get(shared_client):
    client = shared_client
    resp = client.get("/sign/g1/full.crl")
    etag, modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    assert client.get("/sign/g1/full.crl", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/sign/g1/full.crl", headers={"If-None-Match": f'"other", {etag}'}).status_code == 304
    assert client.get("/sign/g1/full.crl", headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get("/sign/g1/full.crl", headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get("/sign/g1/full.crl", headers={"If-Modified-Since": "not a date"}).status_code == 200
    early = "Thu, 01 Jan 2026 00:00:00 GMT"
    assert client.get("/sign/g1/full.crl", headers={"If-Modified-Since": early}).status_code == 200


def test_a_new_publication_changes_etag_and_archive_keeps_the_old(rt, client, published, clock):
    first = client.get("/sign/g1/full.crl")
    clock.advance(hours=1)
    Publisher(CrlDeps.of(rt)).publish(Stream(rt.authority.issuer("sign"), "full"))
    second = client.get("/sign/g1/full.crl")
    assert second.headers["ETag"] != first.headers["ETag"]
    assert client.get("/sign/g1/full.crl", headers={"If-None-Match": first.headers["ETag"]}).status_code == 200
    old = client.get("/sign/g1/full.crl?number=1")
    assert old.status_code == 200 and old.data == first.data
    assert client.get("/sign/g1/full.pem?number=2").status_code == 200
    # The numbers are the CRLs' own cRLNumber extensions (RFC 5280 section 5.2.3), read back by pyca.
    def number(der: bytes) -> int:
        return x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number(old.data) == 1 and number(second.data) == 2
    archived = x509.load_pem_x509_crl(client.get("/sign/g1/full.pem?number=2").data)
    assert archived.public_bytes(Encoding.DER) == second.data


@pytest.mark.parametrize("path, status, message", [
    ("/sign/g1/full.crl?number=9", 404, "sign-g1/full has no archived CRL number 9"),
    ("/sign/g1/full.crl?number=abc", 400, "'abc' is not a CRL number"),
    ("/sign/g1/full.crl?number=0", 400, "is not a CRL number"),
    ("/sign/g1/full.crl?number=1&number=2", 400, "is not a CRL number"),
    ("/sign/g1/full.crl?foo=1", 400, "unknown query parameter(s) ['foo']"),
    ("/sign/g1/full.crl?number=", 400, "is not a CRL number"),
    ("/sign/g1/full.crl?number=%C2%B2", 400, "is not a CRL number"),  # "²": str.isdigit() but not int()
    ("/sign/g1/full.crl?number=%FF", 400, "is not a CRL number"),
    ("/sign/g1/full.crl?number=1234567890123456789", 400, "is not a CRL number"),  # beyond the BigInteger column
    ("/sign/g1/full.crl?number=1;number=2", 400, "is not a CRL number"),  # ";" is no separator (Python 3.10+)
    ("/sign/g1/full.crl?number", 400, "bad query string"),
    ("/sign/g1/full.crl?a=1&b=2&c=3&d=4&e=5", 400, "bad query string"),  # max_num_fields
    ("/sign/g7/full.crl", 404, "no sign CA generation 7"),
    ("/sign/g1/99999.crl", 404, "no CRL partition '99999'"),
    ("/sign/g1/arl-delta.crl", 404, "no delta CRL for 'arl'"),
    ("/sign/g1/full-delta.crl", 404, "delta CRLs are off"),
    ("/root/g1/full.crl", 404, "no CA kind 'root'"),
    ("/sign/g1/full.der", 404, "no CRL at"),
    ("/", 404, "no CRL at"),
    ("/auth/g1/full.crl", 404, "auth-g1/full has not been published yet"),
])
def test_bad_requests_get_clear_json_errors(shared_client, path, status, message):
    resp = shared_client.get(path)
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/json"
    assert message in resp.get_json()["message"]


def test_only_get_and_head(shared_client):
    resp = shared_client.post("/sign/g1/full.crl", data=b"x")
    assert resp.status_code == 405 and resp.headers["Allow"] == "GET, HEAD"


def test_access_control_for_registered_relying_parties(config, clock):
    runtime = Runtime.open(config.replace(crl=CrlConfig(access_control=True)), clock)
    runtime.authority.init()
    try:
        Publisher(CrlDeps.of(runtime)).publish(Stream(runtime.authority.issuer("sign"), "full"))
        _, both = runtime.registry.add_relying_party("bank", "both")
        _, auth_only = runtime.registry.add_relying_party("shop", "auth")
        client = Client(make_app(CrlDeps.of(runtime)))
        anonymous = client.get("/sign/g1/full.crl")
        assert anonymous.status_code == 401 and "registered relying parties" in anonymous.get_json()["message"]
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/sign/g1/full.crl", headers={"Authorization": "Bearer rp_wrong"}).status_code == 401
        assert client.get("/sign/g1/full.crl", headers={"Authorization": f"Bearer {both}"}).status_code == 200
        assert client.get("/sign/g1/full.crl", headers={"X-JPKI-Relying-Party": both}).status_code == 200
        forbidden = client.get("/sign/g1/full.crl", headers={"Authorization": f"Bearer {auth_only}"})
        assert forbidden.status_code == 403 and "'shop'" in forbidden.get_json()["message"]
    finally:
        runtime.close()


def test_max_age_is_zero_once_next_update_has_passed(client, published, clock):
    crl = x509.load_der_x509_crl(client.get("/sign/g1/full.crl").data)
    clock.set(crl.next_update_utc + timedelta(minutes=1))
    assert client.get("/sign/g1/full.crl").headers["Cache-Control"].endswith("max-age=0")


def test_a_broken_crl_file_is_a_server_error_not_a_bad_request(rt, client, published):
    pub = Publisher(CrlDeps.of(rt))
    pub.current_file(Stream(rt.authority.issuer("sign"), "full")).write_bytes(b"\x30\x82")  # truncated DER
    resp = client.get("/sign/g1/full.crl")
    assert resp.status_code == 500
    assert resp.get_json()["error"] == "internal_error"
