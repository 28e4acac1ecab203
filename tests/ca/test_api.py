"""The admin API through Flask's test client: auth, JSON errors naming the field, nothing written on bad input."""

import base64

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from jpki_mock.app import create_admin_app
from tests.support import HOLDER


@pytest.fixture
def client(rt):
    app = create_admin_app(rt)
    c = app.test_client()
    c.headers = {"Authorization": f"Bearer {rt.token}"}
    return c


def call(client, method, path, **kw):
    kw.setdefault("headers", client.headers)
    return getattr(client, method)(path, **kw)


def test_no_token_401_and_wrong_token_401(client):
    r = client.get("/admin/api/cas")
    assert r.status_code == 401 and r.json["field"] == "Authorization" and "WWW-Authenticate" in r.headers
    r = client.get("/admin/api/cas", headers={"Authorization": "Bearer jpkim_wrong"})
    assert r.status_code == 401 and r.json["message"].endswith("invalid bearer token")
    r = client.post("/admin/api/holders", json=HOLDER)
    assert r.status_code == 401


def test_index_lists_urls_without_token(client, rt):
    r = client.get("/")
    assert r.status_code == 200 and r.json["ocsp"] == rt.config.public_url + "/ocsp"
    assert r.json["crls"]["sign-g1"]["full"].endswith("/crl/sign/g1/full.crl")


def test_holder_issue_revoke_flow(client, rt):
    r = call(client, "post", "/admin/api/holders", json=HOLDER)
    assert r.status_code == 201, r.json
    hid = r.json["id"]
    assert r.json["date_of_birth"] == "319801231" and r.json["municipality"] == "13101"
    r = call(client, "post", f"/admin/api/holders/{hid}/certificates",
             json={"kinds": "both", "pkcs12_passphrase": "pw1234"})
    assert r.status_code == 201, r.json
    sign = next(c for c in r.json if c["kind"] == "sign")
    _key, cert, cas = pkcs12.load_key_and_certificates(base64.b64decode(sign["pkcs12_base64"]), b"pw1234")
    assert cert.serial_number == sign["serial"] and len(cas) == 1
    r = call(client, "get", f"/admin/api/certificates/sign/{sign['serial']}?format=der")
    assert r.status_code == 200 and r.mimetype == "application/pkix-cert" and r.data[:1] == b"\x30"
    r = call(client, "post", f"/admin/api/certificates/sign/{sign['serial']}/revoke",
             json={"reason": "certificateHold"})
    assert r.status_code == 200 and r.json["status"] == "revoked" and r.json["reason"] == "certificateHold"
    r = call(client, "post", f"/admin/api/certificates/sign/{sign['serial']}/release")
    assert r.status_code == 409 and r.json["error"] == "hold_not_releasable"
    r = call(client, "post", f"/admin/api/certificates/sign/{sign['serial']}/revoke",
             json={"reason": "certificateHold"})
    assert r.status_code == 409 and r.json["error"] == "already_revoked"
    r = call(client, "get", "/admin/api/certificates?status=hold")
    assert [c["serial"] for c in r.json] == [sign["serial"]]
    r = call(client, "post", f"/admin/api/holders/{hid}/events",
             json={"event": "change", "changes": {"name": "山田\u3000次郎"}})
    assert r.status_code == 200 and r.json["holder"]["name"] == "山田\u3000次郎"


def test_expiring_endpoint(client, rt):
    hid = call(client, "post", "/admin/api/holders", json={**HOLDER, "card_expiry": "2026-12-20"}).json["id"]
    call(client, "post", f"/admin/api/holders/{hid}/certificates",
         json={"kinds": "auth", "pkcs12_passphrase": "pw1234"})
    r = call(client, "get", "/admin/api/certificates/expiring?days=30")
    assert r.status_code == 200 and r.json["total"] == 1 and r.json["certificates"][0]["kind"] == "auth"
    r = call(client, "get", "/admin/api/certificates/expiring")
    assert r.status_code == 400 and r.json["field"] == "days"


def test_rollover_and_ca_pem(client, rt):
    r = call(client, "post", "/admin/api/cas/sign/rollover")
    assert r.status_code == 201 and r.json["generation"] == 2
    r = call(client, "get", "/admin/api/cas/sign/2?format=pem")
    assert r.status_code == 200 and r.data.startswith(b"-----BEGIN CERTIFICATE-----")
    r = call(client, "get", "/admin/api/cas/sign/7")
    assert r.status_code == 404 and r.json["field"] == "generation" and r.json["allowed"] == [1, 2]


def test_relying_parties(client, rt):
    r = call(client, "post", "/admin/api/relying-parties", json={"name": "clinic-a", "kinds": "auth"})
    assert r.status_code == 201 and r.json["credential"].startswith("rp_")
    from jpki_mock.access import AccessControl

    party = AccessControl(rt.store).party(r.json["credential"])
    assert party.name == "clinic-a" and party.may_query("auth") and not party.may_query("sign")
    r = call(client, "post", "/admin/api/relying-parties", json={"name": "clinic-a"})
    assert r.status_code == 409 and r.json["field"] == "name"
    r = call(client, "post", "/admin/api/relying-parties", json={"name": "x", "kinds": "all"})
    assert r.status_code == 400 and r.json["allowed"] == ["sign", "auth", "both"]


BAD_REQUESTS = [
    ("post", "/admin/api/holders", {"json": {**HOLDER, "gender": "4"}}, 400, "gender"),
    ("post", "/admin/api/holders", {"json": {**HOLDER, "date_of_birth": "819801231"}}, 400, "date_of_birth"),
    ("post", "/admin/api/holders", {"json": {**HOLDER, "address": "東京都千代田区" + "x" * 300}}, 400, "address"),
    ("post", "/admin/api/holders", {"json": {**HOLDER, "name": "山田 太郎"}}, 400, "name"),
    ("post", "/admin/api/holders", {"json": {**HOLDER, "name_flags": "1"}}, 400, "name_flags"),
    ("post", "/admin/api/holders", {"json": [1, 2]}, 400, "body"),
    ("post", "/admin/api/holders", {"data": "name=x", "content_type": "application/x-www-form-urlencoded"}, 400,
     "Content-Type"),
    ("post", "/admin/api/holders", {"data": "{not json", "content_type": "application/json"}, 400, "body"),
    ("post", "/admin/api/holders", {"data": b"{" + b" " * 2_000_000 + b"}", "content_type": "application/json"}, 413,
     "body"),
    ("post", "/admin/api/holders/999/certificates", {"json": {"pkcs12_passphrase": "pw1234"}}, 404, "holder"),
    ("post", "/admin/api/holders/abc/certificates", {"json": {"pkcs12_passphrase": "pw1234"}}, 400, "holder"),
    ("post", "/admin/api/holders/1/certificates", {"json": {"kinds": "both", "public_key": "garbage"}}, 400,
     "public_key"),
    ("post", "/admin/api/holders/1/certificates", {"json": {"kinds": "auth", "colour": "red"}}, 400, "colour"),
    ("post", "/admin/api/holders/1/events", {"json": {}}, 400, "event"),
    ("post", "/admin/api/holders/1/events", {"json": {"event": "marriage"}}, 400, "event"),
    ("post", "/admin/api/certificates/sign/1/revoke", {"json": {"reason": "keyCompromise"}}, 404, "serial"),
    ("post", "/admin/api/certificates/sign/zz/revoke", {"json": {}}, 400, "serial"),
    ("post", "/admin/api/certificates/sign/1000001/revoke", {"json": {"reason": "removeFromCRL"}}, 400, "reason"),
    ("get", "/admin/api/certificates?limit=0", {}, 400, "limit"),
    ("get", "/admin/api/certificates?colour=red", {}, 400, "colour"),
    ("get", "/admin/api/certificates/sign/1000001?format=xml", {}, 400, "format"),
    ("post", "/admin/api/seed", {"json": {"holders": 10**9}}, 400, "holders"),
]


@pytest.mark.parametrize("method, path, kw, status, field", BAD_REQUESTS,
                         ids=[f"{b[0]} {b[1]} {b[4]}" for b in BAD_REQUESTS])
def test_bad_requests_get_specific_json_errors_and_change_nothing(client, rt, method, path, kw, status, field):
    hid = call(client, "post", "/admin/api/holders", json=HOLDER).json["id"]
    call(client, "post", f"/admin/api/holders/{hid}/certificates",
         json={"kinds": "auth", "pkcs12_passphrase": "pw1234"})
    before = (len(call(client, "get", "/admin/api/holders").json),
              len(call(client, "get", "/admin/api/certificates").json), rt.status.current_seq())
    r = call(client, method, path, **kw)
    assert r.status_code == status, r.data
    assert r.is_json and r.json["field"] == field, r.json
    assert "Traceback" not in r.get_data(as_text=True)
    after = (len(call(client, "get", "/admin/api/holders").json),
             len(call(client, "get", "/admin/api/certificates").json), rt.status.current_seq())
    assert after == before


def test_unknown_route_is_json_404(client):
    r = call(client, "get", "/admin/api/nothing-here")
    assert r.status_code == 404 and r.is_json


def test_new_token_works_and_is_stored_hashed(client, rt):
    r = call(client, "post", "/admin/api/tokens", json={"label": "ci"})
    assert r.status_code == 201
    token = r.json["token"]
    assert client.get("/admin/api/cas", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    from sqlalchemy import select

    from jpki_mock.access import ApiToken

    with rt.store.session() as s:
        stored = s.scalars(select(ApiToken.token_sha256)).all()
    assert token not in stored and len(stored) == 2


def test_a_revoked_token_is_refused_at_once(client, rt):
    made = client.post("/admin/api/tokens", json={"label": "ci"}, headers=client.headers).get_json()
    ci = {"Authorization": f"Bearer {made['token']}"}
    assert client.get("/admin/api/cas", headers=ci).status_code == 200
    r = client.delete("/admin/api/tokens/ci", headers=client.headers)
    assert r.status_code == 200 and r.get_json() == {"label": "ci", "revoked": 1}
    assert client.get("/admin/api/cas", headers=ci).status_code == 401
    assert client.get("/admin/api/cas", headers=client.headers).status_code == 200  # other tokens unaffected
    r = client.delete("/admin/api/tokens/ci", headers=client.headers)
    assert r.status_code == 404 and r.get_json()["field"] == "label"


def test_token_revoked_from_the_cli_is_refused_by_every_server_worker(server):
    import requests

    made = server.cli("token", "--label", "deploy").stdout.decode().strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {made}"}
    # two workers: ask enough times that both have answered with the token
    assert all(requests.get(server.base + "/admin/api/cas", headers=headers, timeout=5).status_code == 200
               for _ in range(8))
    out = server.cli("token", "--label", "deploy", "--revoke").stdout.decode()
    assert "revoked 1 token(s) labelled deploy" in out
    assert all(requests.get(server.base + "/admin/api/cas", headers=headers, timeout=5).status_code == 401
               for _ in range(8))
