"""The admin API's OpenAPI document (jpki_mock/openapi.yaml) against the real server.

Three layers:
- the document and the admin app's url_map list the same operations, both ways, so a new
  endpoint cannot go undocumented (and a documented one cannot vanish);
- every documented operation is driven with real requests against a live ``jpki-mock serve``
  (127.0.0.1), and each answer (status, content type, required headers, body) is validated
  against the document with jsonschema-rs (JSON Schema 2020-12, formats checked);
- schemathesis (tests/test_schemathesis.py) fuzzes the same document against a live server.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import jsonschema_rs
import pytest
import requests
from cryptography import x509

from jpki_mock.apidoc import METHODS, document, operations, render_html, resolve
from jpki_mock.app import create_admin_app
from tests.support import HOLDER, Server, open_runtime

PREFIX = "/admin/api"
CHILD = {**HOLDER, "name": "山田\u3000花子", "date_of_birth": "2015-04-01", "gender": "2"}


def openapi_path(rule: str) -> str:
    """``/holders/<holder_id>`` or ``/g<int:generation>`` (werkzeug) -> ``/holders/{holder_id}`` (OpenAPI)."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


# ---------------------------------------------------------------- the document and the routes
def test_every_admin_route_is_documented_and_every_documented_route_exists(tmp_path):
    rt = open_runtime(tmp_path)
    try:
        app = create_admin_app(rt)
    finally:
        rt.close()
    routed = {(method.lower(), openapi_path(rule.rule))
              for rule in app.url_map.iter_rules() if rule.rule.startswith(PREFIX)
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(method, path) for method, path, _op in operations(document())}
    assert routed - documented == set(), "routes missing from jpki_mock/openapi.yaml"
    assert documented - routed == set(), "documented operations no route serves"
    assert all(path.startswith(PREFIX) for _m, path in documented)


def test_document_is_consistent():
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["version"] == metadata.version("jpki-mock")
    ops = operations(doc)
    ids = [op["operationId"] for _m, _p, op in ops]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    tags = {t["name"] for t in doc["tags"]}
    for method, path, op in ops:
        where = f"{method.upper()} {path}"
        assert len(op["tags"]) == 1 and op["tags"][0] in tags, where
        assert op["summary"], where
        # every {name} in the path is declared as a path parameter, and no other
        declared = {resolve(doc, p)["name"] for p in op.get("parameters", []) if resolve(doc, p)["in"] == "path"}
        assert declared == set(re.findall(r"{([a-z_]+)}", path)), where
        statuses = set(op["responses"])
        assert statuses and "default" not in statuses, f"{where}: real statuses only"
        if op.get("security") != []:
            assert "401" in statuses, f"{where}: every guarded operation can answer 401"
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = resolve(doc, response)["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{where} {status}: errors share one shape"
    assert set(doc["paths"]) == {p for _m, p, _o in ops}
    assert all(set(item) <= set(METHODS) for item in doc["paths"].values())
    # the document is a valid JSON Schema 2020-12 world: every schema compiles, every $ref resolves
    for name in doc["components"]["schemas"]:
        validator({"$ref": f"#/components/schemas/{name}"})


def test_html_page_shows_every_operation_and_schema():
    doc = document()
    page = render_html(doc)
    for _m, path, op in operations(doc):
        assert f'id="{op["operationId"]}"' in page and f"<code>{path}</code>" in page
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page.replace(
        "https://json-schema.org", "")  # works offline: nothing fetched from elsewhere


# ---------------------------------------------------------------- validating real answers
def validator(schema: dict[str, Any]) -> Any:
    """A JSON Schema 2020-12 validator for ``schema``, its ``#/components/...`` references
    resolved in the document (OpenAPI 3.1 schemas are 2020-12 schemas, section 4.8.24)."""
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "components": document()["components"],
            **schema}
    return jsonschema_rs.validator_for(root, validate_formats=True)


class Api:
    """Requests to the live server, each answer checked against the document and recorded."""

    def __init__(self, server: Server, token: str):
        self.base = server.base
        self.auth = {"Authorization": f"Bearer {token}"}
        self.doc = document()
        self.seen: dict[tuple[str, str], set[int]] = {}

    def __call__(self, method: str, template: str, status: int, *, path: dict[str, Any] | None = None,
                 token: bool = True, **kw: Any) -> Any:
        url = self.base + PREFIX + template.format(**(path or {}))
        headers = {**(self.auth if token else {}), **kw.pop("headers", {})}
        r = requests.request(method, url, headers=headers, timeout=60, **kw)
        where = f"{method} {PREFIX}{template} -> {r.status_code} {r.text[:300]}"
        assert r.status_code == status, where
        self.check(method.lower(), PREFIX + template, r, where)
        self.seen.setdefault((method.lower(), PREFIX + template), set()).add(r.status_code)
        if r.headers.get("Content-Type", "").startswith("application/json"):
            return r.json()
        return r

    def check(self, method: str, template: str, r: requests.Response, where: str) -> None:
        op = self.doc["paths"][template][method]
        assert str(r.status_code) in op["responses"], f"undocumented status: {where}"
        response = resolve(self.doc, op["responses"][str(r.status_code)])
        for name, header in response.get("headers", {}).items():
            if header.get("required"):
                assert name in r.headers, f"missing header {name}: {where}"
        content = response.get("content", {})
        media = r.headers.get("Content-Type", "").split(";")[0].strip()
        assert media in content, f"undocumented content type {media!r}: {where}"
        if media == "application/json":
            errors = [e.message for e in validator(content[media]["schema"]).iter_errors(r.json())]
            assert not errors, f"{where}: {errors}"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = Server(tmp_path_factory.mktemp("openapi"), {"JPKI_MOCK_TIME_TRAVEL": "1"}, workers=1)
    token = server.init()
    server.start()
    try:
        yield Api(server, token)
    finally:
        server.stop()


@pytest.mark.server
def test_every_documented_operation_answers_as_documented(api: Api):
    doc = api.doc
    # ---- the reference itself, without a token
    index = api("GET", "", 200, token=False)
    listed = {(o["method"].lower(), o["path"]) for s in index["sections"] for o in s["operations"]}
    assert listed == {(m, p) for m, p, _o in operations(doc)}
    assert index["openapi"] == api.base + PREFIX + "/openapi.json" and index["docs"] == api.base + PREFIX + "/docs"
    assert api("GET", "", 400, token=False, params={"zzz": "1"})["field"] == "zzz"
    assert api("GET", "/openapi.json", 200, token=False) == doc
    page = api("GET", "/docs", 200, token=False)
    assert "text/html" in page.headers["Content-Type"] and "listCas" in page.text

    # ---- CAs
    err = api("GET", "/cas", 401, token=False)
    assert err["error"] == "unauthorized" and err["field"] == "Authorization"
    cas = api("GET", "/cas", 200)
    assert {c["issuer"] for c in cas} == {"sign-g1", "auth-g1"}
    api("GET", "/cas/{kind}/{generation}", 200, path={"kind": "sign", "generation": 1})
    pem = api("GET", "/cas/{kind}/{generation}", 200, path={"kind": "sign", "generation": 1}, params={"format": "pem"})
    der = api("GET", "/cas/{kind}/{generation}", 200, path={"kind": "sign", "generation": 1}, params={"format": "der"})
    assert x509.load_der_x509_certificate(der.content) == x509.load_pem_x509_certificate(pem.content)
    assert api("GET", "/cas/{kind}/{generation}", 400, path={"kind": "sign", "generation": 1},
               params={"format": "xml"})["field"] == "format"
    assert api("GET", "/cas/{kind}/{generation}", 404, path={"kind": "sign", "generation": 9})["error"] \
        == "unknown_issuer"
    assert api("POST", "/cas/{kind}/rollover", 201, path={"kind": "auth"})["issuer"] == "auth-g2"
    assert api("POST", "/cas/{kind}/{generation}/revoke", 400, path={"kind": "auth", "generation": 2},
               json={"reason": "keyCompromise", "confirm": "auth-g1"})["field"] == "confirm"
    revoked = api("POST", "/cas/{kind}/{generation}/revoke", 200, path={"kind": "auth", "generation": 2},
                  json={"reason": "keyCompromise", "confirm": "auth-g2"})
    assert revoked["reason"] == "keyCompromise"
    api("POST", "/cas/{kind}/{generation}/revoke", 409, path={"kind": "auth", "generation": 2},
        json={"reason": "keyCompromise", "confirm": "auth-g2"})

    # ---- holders and their events
    assert api("POST", "/holders", 400, json={**HOLDER, "gender": "9"})["field"] == "gender"
    holder = api("POST", "/holders", 201, json=HOLDER)
    hid = holder["id"]
    assert api("GET", "/holders", 200, params={"state": "active", "limit": 10})[0]["id"] == hid
    assert api("GET", "/holders", 400, params={"state": "asleep"})["field"] == "state"
    assert api("GET", "/holders/{holder_id}", 200, path={"holder_id": hid})["certificates"] == []
    assert api("GET", "/holders/{holder_id}", 404, path={"holder_id": 99999})["field"] == "holder"
    issued = api("POST", "/holders/{holder_id}/certificates", 201, path={"holder_id": hid},
                 json={"kinds": "both", "pkcs12_passphrase": "pw1234"})
    sign = next(c for c in issued if c["kind"] == "sign")
    assert base64.b64decode(sign["pkcs12_base64"])[:1] == b"\x30"
    assert api("POST", "/holders/{holder_id}/events", 400, path={"holder_id": hid},
               json={"event": "nap"})["field"] == "event"
    loss = api("POST", "/holders/{holder_id}/events", 200, path={"holder_id": hid}, json={"event": "loss"})
    assert {r["reason"] for r in loss["revoked"]} == {"certificateHold"}
    api("POST", "/holders/{holder_id}/events", 409, path={"holder_id": hid}, json={"event": "loss"})
    renewal = api("POST", "/holders/{holder_id}/events", 200, path={"holder_id": hid},
                  json={"event": "renewal", "pkcs12_passphrase": "pw1234"})
    assert len(renewal["issued"]) == 2
    change = api("POST", "/holders/{holder_id}/events", 200, path={"holder_id": hid},
                 json={"event": "change", "changes": {"address": "東京都千代田区千代田2-2"}})
    assert change["holder"]["address"].endswith("2-2") and [r["kind"] for r in change["revoked"]] == ["sign"]
    api("POST", "/holders/{holder_id}/events", 200, path={"holder_id": hid},
        json={"event": "request", "reason": "keyCompromise", "kinds": ["auth"]})

    # ---- certificates
    other = api("POST", "/holders", 201, json={**HOLDER, "name": "佐藤\u3000一郎"})["id"]
    assert api("POST", "/holders/{holder_id}/certificates", 400, path={"holder_id": other},
               json={"kinds": "sign"})["field"] == "pkcs12_passphrase"
    cert = api("POST", "/holders/{holder_id}/certificates", 201, path={"holder_id": other},
               json={"kinds": "sign", "pkcs12_passphrase": "pw1234"})[0]
    assert cert["pem"].startswith("-----BEGIN CERTIFICATE-----")
    certs = api("GET", "/certificates", 200, params={"kind": "sign", "status": "good", "generation": 1})
    assert [c["serial"] for c in certs] == [cert["serial"]]
    assert api("GET", "/certificates", 400, params={"generation": 1})["field"] == "generation"
    expiring = api("GET", "/certificates/expiring", 200, params={"days": 3650})
    assert expiring["total"] >= 1
    assert api("GET", "/certificates/expiring", 400)["field"] == "days"
    ref = {"issuer": "sign", "serial": cert["serial"]}
    assert api("GET", "/certificates/{issuer}/{serial}", 200, path=ref)["serial"] == cert["serial"]
    der = api("GET", "/certificates/{issuer}/{serial}", 200, path=ref, params={"format": "der"})
    assert x509.load_der_x509_certificate(der.content).serial_number == cert["serial"]
    api("GET", "/certificates/{issuer}/{serial}", 200, path=ref, params={"format": "pem"})
    api("GET", "/certificates/{issuer}/{serial}", 404, path={"issuer": "sign", "serial": 424242})
    assert api("GET", "/certificates/{issuer}/{serial}", 400, path={"issuer": "sign", "serial": "x"})["field"] \
        == "serial"
    api("POST", "/certificates/{issuer}/{serial}/release", 409, path=ref)
    held = api("POST", "/certificates/{issuer}/{serial}/revoke", 200, path=ref, json={"reason": "certificateHold"})
    assert held["status"] == "revoked" and held["reason"] == "certificateHold"
    assert api("POST", "/certificates/{issuer}/{serial}/release", 409, path=ref)["error"] == "hold_not_releasable"
    # a hold may become a permanent revocation (RFC 5280 section 5.3.1), which is final
    assert api("POST", "/certificates/{issuer}/{serial}/revoke", 200, path=ref, json={"reason": 1})["reason"] \
        == "keyCompromise"
    assert api("POST", "/certificates/{issuer}/{serial}/revoke", 409, path=ref, json={"reason": 1})["error"] \
        == "already_revoked"

    # ---- the software card
    cid = api("POST", "/holders", 201, json={**HOLDER, "name": "鈴木\u3000花子"})["id"]
    card = {"holder_id": cid}
    state = api("POST", "/holders/{holder_id}/card", 201, path=card,
                json={"auth_pin": "1234", "sign_password": "ABC123"})
    assert state["sign"]["tries_left"] == 5 and state["auth"]["certificate_status"] == "good"
    api("POST", "/holders/{holder_id}/card", 409, path=card, json={"auth_pin": "1234", "sign_password": "ABC123"})
    child = api("POST", "/holders", 201, json=CHILD)["id"]
    assert api("POST", "/holders/{holder_id}/card", 201, path={"holder_id": child}, json={"auth_pin": "1234"})[
        "sign"] is None
    assert api("GET", "/holders/{holder_id}/card", 200, path=card)["holder"] == cid
    assert api("GET", "/holders/{holder_id}/card", 404, path={"holder_id": hid})["field"] == "holder"
    api("GET", "/holders/{holder_id}/card/certificates/auth", 200, path=card)
    wrong = api("POST", "/holders/{holder_id}/card/certificates/{kind}", 403, path={**card, "kind": "sign"},
                json={"password": "WRONG1"})
    assert wrong["error"] == "wrong_pin" and wrong["tries_left"] == 4
    api("POST", "/holders/{holder_id}/card/certificates/{kind}", 200, path={**card, "kind": "sign"},
        json={"password": "ABC123"})
    signed = api("POST", "/holders/{holder_id}/card/sign", 200, path=card,
                 json={"password": "ABC123", "data_base64": base64.b64encode(b"hello").decode(), "scheme": "pss"})
    assert signed["scheme"] == "pss" and signed["certificate"]["kind"] == "sign"
    assert api("POST", "/holders/{holder_id}/card/sign", 400, path=card,
               json={"password": "ABC123", "data_base64": "***"})["field"] == "data_base64"
    api("POST", "/holders/{holder_id}/card/authenticate", 200, path=card,
        json={"pin": "1234", "challenge_base64": base64.b64encode(b"nonce").decode()})
    exported = api("POST", "/holders/{holder_id}/card/export", 200, path=card,
                   json={"kind": "auth", "pin": "1234", "pkcs12_passphrase": "pw1234"})
    assert exported["kind"] == "auth"
    assert api("POST", "/holders/{holder_id}/card/unlock", 200, path=card, json={"kind": "sign"})["sign"][
        "tries_left"] == 5
    assert api("POST", "/holders/{holder_id}/card/unlock", 409, path={"holder_id": child},
               json={"kind": "sign"})["error"] == "not_eligible"
    api("POST", "/holders/{holder_id}/card/reset", 200, path=card, json={"kind": "auth", "new_pin": "5678"})
    assert api("POST", "/holders/{holder_id}/card/reset", 400, path=card,
               json={"kind": "auth", "new_pin": "12"})["field"] == "new_pin"
    renewed = api("POST", "/holders/{holder_id}/card/renew", 200, path=card,
                  json={"auth_pin": "2468", "sign_password": "NEW2026"})
    assert renewed["auth"]["tries_left"] == 3 and renewed["sign"]["certificate_status"] == "good"
    assert api("POST", "/holders/{holder_id}/card/renew", 400, path=card,
               json={"auth_pin": "2468", "sign_password": "no"})["field"] == "sign_password"

    # ---- CRLs
    published = api("POST", "/crl/publish", 201, json={"ca": "sign-g1", "partition": "full"})["published"]
    assert [p["stream"] for p in published] == ["sign-g1/full"]
    assert api("POST", "/crl/publish", 400, json={"delta": "yes"})["field"] == "delta"
    streams = api("GET", "/crl/streams", 200)
    assert any(s["number"] is None for s in streams) and any(s["number"] for s in streams)
    archive = api("GET", "/crl/streams/{kind}/g{generation}/{name}", 200,
                  path={"kind": "sign", "generation": 1, "name": "full"})
    assert archive["crls"][-1]["number"] == published[0]["number"]
    api("GET", "/crl/streams/{kind}/g{generation}/{name}", 404, path={"kind": "sign", "generation": 7, "name": "full"})

    # ---- OCSP counts
    assert api("GET", "/ocsp/stats", 200, params={"since": "2020-01-01"})["total"] == 0
    assert api("GET", "/ocsp/stats", 400, params={"until": "yesterday"})["field"] == "until"

    # ---- relying parties and tokens
    rp = api("POST", "/relying-parties", 201, json={"name": "clinic", "kinds": "auth"})
    assert rp["credential"] and rp["kinds"] == "auth"
    assert [p["name"] for p in api("GET", "/relying-parties", 200)] == ["clinic"]
    assert api("DELETE", "/relying-parties/{name}", 200, path={"name": "clinic"}) == {"name": "clinic",
                                                                                       "active": False}
    api("DELETE", "/relying-parties/{name}", 404, path={"name": "nobody"})
    spare = api("POST", "/tokens", 201, json={"label": "spare"})
    assert api("GET", "/clock", 200, headers={"Authorization": f"Bearer {spare['token']}"})["enabled"] is True
    assert api("POST", "/tokens", 400, json={"label": ""})["field"] == "label"
    assert api("DELETE", "/tokens/{label}", 200, path={"label": "spare"})["revoked"] == 1
    api("DELETE", "/tokens/{label}", 404, path={"label": "spare"})
    api("GET", "/clock", 401, token=False, headers={"Authorization": f"Bearer {spare['token']}"})

    # ---- time travel
    moved = api("POST", "/clock/advance", 200, json={"by": "1d"})
    assert moved["offset_seconds"] >= 86400 - 5
    assert api("POST", "/clock/advance", 400, json={"by": "soon"})["field"] == "by"
    api("POST", "/clock/set", 200, json={"at": "2030-01-01T00:00:00Z"})
    assert api("POST", "/clock/set", 400, json={"at": "2030-01-01"})["field"] == "at"
    assert api("POST", "/clock/reset", 200)["offset_seconds"] == 0

    # ---- seeding
    seeded = api("POST", "/seed", 201, json={"holders": 2})
    # each holder gets both certificates, but a holder under 15 no signature certificate
    assert seeded["holders"] == 2 and 2 <= seeded["certificates"] <= 4
    assert api("POST", "/seed", 400, json={"holders": 0})["field"] == "holders"

    # ---- the audit log: every change above, and every refusal, a page at a time
    page = api("GET", "/audit", 200, params={"limit": 5})
    assert len(page["entries"]) == 5 and page["next"] is not None
    assert all(e["actor"].startswith("token:") for e in page["entries"])
    older = api("GET", "/audit", 200, params={"limit": 5, "before": page["entries"][-1]["id"]})
    assert older["entries"][0]["id"] < page["entries"][-1]["id"]
    revokes = api("GET", "/audit", 200, params={"action": "cert.revoke", "limit": 1000})["entries"]
    assert {e["result"] for e in revokes} == {"ok", "already_revoked"}
    assert api("GET", "/audit", 400, params={"limit": 0})["field"] == "limit"

    # ---- shared errors: too large, wrong method (with Allow), not JSON
    big = api("POST", "/tokens", 413, data=b"{" + b" " * 2_000_000 + b"}", headers={"Content-Type": "application/json"})
    assert big["error"] == "too_large" and big["field"] == "body"
    assert api("POST", "/tokens", 400, data=b"label=x", headers={"Content-Type": "text/plain"})["field"] \
        == "Content-Type"
    r = requests.patch(api.base + PREFIX + "/cas", headers=api.auth, timeout=10)
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) >= {"GET"} and r.json()["error"] \
        == "method_not_allowed"

    missed = {(m, p) for m, p, _o in operations(doc)} - set(api.seen)
    assert not missed, f"documented operations this test never called: {sorted(missed)}"
    succeeded = {key for key, statuses in api.seen.items() if any(s < 300 for s in statuses)}
    assert succeeded | {("post", PREFIX + "/certificates/{issuer}/{serial}/release")} == set(api.seen), \
        "every operation but the hold release (always refused) answered a success"
