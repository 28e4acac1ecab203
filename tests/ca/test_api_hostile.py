"""Hostile input to every admin endpoint (issue 16, point 4): never a 500, always a JSON error
naming the field, never a change to the store on a rejected request, and no destructive
operation from a body that forgot a field.

Two layers: a table of the cases a fuzzing run reported (each on SQLite and PostgreSQL, whose
limits differ: PostgreSQL refuses NUL in text, both refuse integers beyond BIGINT), and a
property-based test (hypothesis) that walks the Flask url_map of the admin app, so an endpoint
added later is fuzzed without touching this file.  The fields and query parameters each endpoint
accepts are learnt from the endpoint itself: a request with an unknown one must be refused with
a 400 whose ``allowed`` lists them.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from jpki_mock.app import create_admin_app, create_app
from jpki_mock.web import MAX_JSON_DEPTH
from tests.support import HOLDER, fresh_pg_database, open_runtime
from tests.support.store import snapshot

#: how many hostile requests the property-based test sends per database backend (more for a
#: longer hunt: JPKI_MOCK_FUZZ_EXAMPLES=5000)
FUZZ_EXAMPLES = int(os.environ.get("JPKI_MOCK_FUZZ_EXAMPLES", "300"))
PREFIX = "/admin/api"
UNKNOWN = "zzz"


# ---------------------------------------------------------------- the world the requests hit
class World:
    """An initialised runtime with a holder, its certificates, a software card, a relying party
    and a published CRL, and the admin app's test client holding a valid token."""

    def __init__(self, rt: Any, populate: bool = True):
        self.rt = rt
        self.app = create_admin_app(rt)
        self.client = self.app.test_client()
        self.auth = {"Authorization": f"Bearer {rt.token}"}
        if populate:
            self.populate()

    def populate(self) -> None:
        self.holder = self.ok("post", "/holders", json=HOLDER)["id"]
        issued = self.ok("post", f"/holders/{self.holder}/certificates", json={"pkcs12_passphrase": "pw1234"})
        self.serial = issued[0]["serial"]
        self.card_holder = self.ok("post", "/holders", json={**HOLDER, "name": "山田\u3000花子"})["id"]
        self.ok("post", f"/holders/{self.card_holder}/card", json={"auth_pin": "1234", "sign_password": "ABC123"})
        self.ok("post", "/relying-parties", json={"name": "clinic", "kinds": "both"})
        self.ok("post", "/crl/publish", json={"ca": "sign-g1", "partition": "full"})
        self.ok("post", "/tokens", json={"label": "spare"})  # one the fuzz may revoke, not its own

    def request(self, method: str, path: str, **kw: Any) -> Any:
        kw.setdefault("headers", self.auth)
        url = path if path.startswith(PREFIX) else PREFIX + path
        return self.client.open(url, method=method.upper(), **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.request(method, path, **kw)
        assert r.status_code in (200, 201), r.get_data(as_text=True)
        return r.json

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self.rt)

    def valid_segment(self, name: str, rule: str) -> str:
        """A path segment that names something that exists, so validation further in is reached."""
        if name == "holder_id":
            return str(self.card_holder if "/card" in rule else self.holder)
        if name == "kind":
            return "auth" if "/card/" in rule else "sign"
        return {"generation": "1", "issuer": "sign", "serial": str(self.serial), "label": "spare",
                "name": "full" if "/crl/" in rule else "clinic"}[name]


def make_world(tmp_path_factory: pytest.TempPathFactory, backend: str) -> World:
    url = "" if backend == "sqlite" else fresh_pg_database()
    rt = open_runtime(tmp_path_factory.mktemp(f"hostile-{backend}"), database_url=url, time_travel=True)
    return World(rt)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    w = make_world(tmp_path_factory, request.param)
    yield w
    w.rt.close()


def admin_rules(app: Any) -> list[tuple[str, str, list[str]]]:
    """(method, rule, argument names) of every admin endpoint, from the app's url_map."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, rule.rule, sorted(rule.arguments)))
    return out


def fill(rule: str, segments: dict[str, str]) -> str:
    """The URL of ``rule`` with each ``<arg>`` / ``<converter:arg>`` replaced, percent-encoded
    (lone surrogates as their would-be UTF-8 bytes, which no decoder accepts)."""
    def segment(m: re.Match[str]) -> str:
        return quote(segments[m.group(1)].encode("utf-8", "surrogatepass"), safe="")
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", segment, rule)


def assert_json_error(r: Any, context: str) -> dict[str, Any]:
    assert r.status_code < 500, f"{context}: {r.status_code} {r.get_data(as_text=True)[:500]}"
    if r.status_code >= 400:
        assert r.is_json, f"{context}: {r.status_code} is not JSON: {r.get_data(as_text=True)[:200]}"
        err = r.json
        assert isinstance(err.get("error"), str) and isinstance(err.get("message"), str), f"{context}: {err}"
        assert "Traceback" not in r.get_data(as_text=True)
        return dict(err)
    return {}


# ---------------------------------------------------------------- the reported cases
DEEP = b"[" * 100_000 + b"]" * 100_000
NESTED_33 = json.dumps({"name": json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)}).encode()
BIG = "9" * 30
JSON = "application/json"

#: (method, path, request keywords, status, field); paths under /admin/api
REPORTED = [
    # nesting and parsing
    ("post", "/holders", {"data": DEEP, "content_type": JSON}, 400, "body"),
    ("post", "/cas/auth/1/revoke", {"data": DEEP, "content_type": JSON}, 400, "body"),
    ("post", "/holders", {"data": NESTED_33, "content_type": JSON}, 400, "body"),
    ("post", "/seed", {"data": b'{"holders": NaN}', "content_type": JSON}, 400, "body"),
    ("post", "/seed", {"data": b'{"holders": 1' + b"0" * 5000 + b"}", "content_type": JSON}, 400, "body"),
    ("post", "/tokens", {"data": b'{"label": "\xff"}', "content_type": JSON}, 400, "body"),
    # integers the database cannot hold, in paths and query strings
    ("get", f"/certificates/sign-g{BIG}/1000001", {}, 400, "issuer"),
    ("get", f"/certificates/sign/{BIG}", {}, 404, "serial"),
    ("post", f"/certificates/sign/{BIG}/revoke", {"json": {"reason": "keyCompromise"}}, 404, "serial"),
    ("get", "/certificates/sign/" + "9" * 60, {}, 400, "serial"),
    ("get", f"/certificates?limit={BIG}", {}, 400, "limit"),
    ("get", f"/certificates?offset={BIG}", {}, 400, "offset"),
    ("get", f"/holders?offset={BIG}", {}, 400, "offset"),
    ("get", f"/certificates?holder={BIG}", {}, 400, "holder"),
    ("get", f"/certificates?kind=sign&generation={BIG}", {}, 400, "generation"),
    ("get", f"/certificates?expiring_within_days={BIG}", {}, 400, "expiring_within_days"),
    ("get", f"/certificates/expiring?days={BIG}", {}, 400, "days"),
    ("get", f"/holders/{BIG}", {}, 400, "holder"),
    ("post", f"/holders/{BIG}/certificates", {"json": {"pkcs12_passphrase": "pw1234"}}, 400, "holder"),
    ("get", f"/cas/sign/{BIG}", {}, 400, "generation"),
    ("get", f"/crl/streams/sign/g{BIG}/full", {}, 404, "generation"),
    ("post", "/seed", {"json": {"holders": 10**30}}, 400, "holders"),
    # Unicode digits: str.isdigit() says yes, int() says no (or reads another script's digits)
    ("get", "/holders/%C2%B2", {}, 400, "holder"),
    ("get", "/holders/%D9%A3", {}, 400, "holder"),
    ("get", "/certificates/sign-g%C2%B2/1", {}, 400, "issuer"),
    ("get", "/certificates/sign/%EF%BC%91", {}, 400, "serial"),
    ("get", "/certificates?limit=%C2%B2", {}, 400, "limit"),
    ("get", "/certificates?kind=sign&generation=%D9%A1", {}, 400, "generation"),
    ("get", "/cas/sign/%D9%A1", {}, 400, "generation"),
    ("get", "/crl/streams/sign/g%C2%B2/full", {}, 404, "generation"),
    ("get", "/ocsp/stats?since=%EF%BC%92026-01-01", {}, 400, "since"),
    ("post", "/clock/advance", {"json": {"by": f"{10**12}d"}}, 400, "by"),
    ("post", "/clock/advance", {"json": {"by": "\u0661d"}}, 400, "by"),
    ("post", "/clock/set", {"json": {"at": "0001-01-01T00:00:00+09:00"}}, 400, "at"),
    # wrong JSON types
    ("post", "/holders", {"json": {**HOLDER, "gender": ["1"]}}, 400, "gender"),
    ("post", "/holders", {"json": {**HOLDER, "date_of_birth": {"y": 1980}}}, 400, "date_of_birth"),
    ("post", "/holders", {"json": {**HOLDER, "card_expiry": 20301231}}, 400, "card_expiry"),
    ("post", "/relying-parties", {"json": {"name": ["x"]}}, 400, "name"),
    ("post", "/tokens", {"json": {"label": 7}}, 400, "label"),
    # text no database stores: lone surrogates and NUL, in bodies, keys, paths and queries
    ("post", "/holders", {"data": b'{"name": "\\ud800", "date_of_birth": "319801231", "gender": "1",'
                                  b' "address": "\\u6771\\u4eac\\u90fd\\u5343\\u4ee3\\u7530\\u533a1"}',
                          "content_type": JSON}, 400, "name"),
    ("post", "/tokens", {"data": b'{"label": "a\\udfffb"}', "content_type": JSON}, 400, "label"),
    ("post", "/tokens", {"json": {"label": "a\x00b"}}, 400, "label"),
    ("post", "/crl/publish", {"json": {"partition": "full\x00"}}, 400, "partition"),
    ("post", "/relying-parties", {"data": b'{"\\ud800": 1}', "content_type": JSON}, 400, "body"),
    ("delete", "/relying-parties/clinic%00", {}, 400, "name"),
    ("get", "/holders?municipality=13101%00", {}, 400, "municipality"),
    # unknown fields and parameters
    ("post", "/tokens", {"json": {"label": "x", UNKNOWN: 1}}, 400, UNKNOWN),
    ("post", "/relying-parties", {"json": {"name": "y", UNKNOWN: 1}}, 400, UNKNOWN),
    ("post", "/cas/sign/rollover", {"json": {UNKNOWN: 1}}, 400, UNKNOWN),
    ("post", "/holders/1/events", {"json": {"event": "death", UNKNOWN: 1}}, 400, UNKNOWN),
    ("post", "/holders/1/events", {"json": {"event": "loss", "reason": "keyCompromise"}}, 400, "reason"),
    ("get", f"/relying-parties?{UNKNOWN}=1", {}, 400, UNKNOWN),
    ("get", f"/ocsp/stats?{UNKNOWN}=1", {}, 400, UNKNOWN),
    ("post", f"/tokens?{UNKNOWN}=1", {"json": {"label": "x"}}, 400, UNKNOWN),
    # revoking a CA: unknown fields, no reason, no or a wrong confirmation
    ("post", "/cas/auth/1/revoke", {"json": {UNKNOWN: 1}}, 400, UNKNOWN),
    ("post", "/cas/auth/1/revoke", {}, 400, "reason"),
    ("post", "/cas/auth/1/revoke", {"json": {}}, 400, "reason"),
    ("post", "/cas/auth/1/revoke", {"json": {"confirm": "auth-g1"}}, 400, "reason"),
    ("post", "/cas/auth/1/revoke", {"json": {"reason": "keyCompromise"}}, 400, "confirm"),
    ("post", "/cas/auth/1/revoke", {"json": {"reason": "keyCompromise", "confirm": "sign-g1"}}, 400, "confirm"),
    ("post", "/cas/auth/1/revoke", {"json": {"reason": "keyCompromise", "confirm": "auth"}}, 400, "confirm"),
    ("post", "/cas/auth/1/revoke", {"json": {"reason": "bogus", "confirm": "auth-g1"}}, 400, "reason"),
    ("post", "/cas/auth/%C2%B9/revoke", {"json": {"reason": "keyCompromise", "confirm": "auth-g1"}}, 400,
     "generation"),
    # found by schemathesis (tests/test_schemathesis.py): an empty query value was read as "no
    # filter" by some endpoints; every filter now refuses it, naming the parameter the caller sent
    ("get", "/ocsp/stats?until=", {}, 400, "until"),
    ("get", "/ocsp/stats?since=", {}, 400, "since"),
    ("get", "/holders?state=", {}, 400, "state"),
    ("get", "/holders?municipality=", {}, 400, "municipality"),
    ("get", "/certificates?expiring_within_days=x", {}, 400, "expiring_within_days"),
]


@pytest.mark.parametrize("method, path, kw, status, field", REPORTED,
                         ids=[f"{m} {p[:60]} {f}" for m, p, _, _, f in REPORTED])
def test_reported_cases_are_specific_4xx_and_change_nothing(world, method, path, kw, status, field):
    before = world.snapshot()
    r = world.request(method, path, **kw)
    err = assert_json_error(r, f"{method} {path}")
    assert r.status_code == status, err
    assert err.get("field") == field, err
    assert world.snapshot() == before
    assert all(i.revoked_at is None for i in world.rt.authority.issuers())


def test_unknown_fields_name_the_first_one_and_list_the_allowed(world):
    r = world.request("post", "/cas/auth/1/revoke", json={"zzz": 1, "aaa": 2, "reason": "keyCompromise"})
    assert r.status_code == 400 and r.json["field"] == "aaa" and r.json["allowed"] == ["confirm", "reason"]
    r = world.request("post", "/tokens", json={"label": "x", "extra": True})
    assert r.status_code == 400 and r.json["field"] == "extra" and r.json["allowed"] == ["label"]


def test_crl_number_with_a_unicode_digit_is_400(world):
    """The public CRL endpoint (not Flask): ``?number=²`` was int("²") -> 500."""
    client = Client(create_app(world.rt))
    for query, field in [("number=%C2%B2", "number"), ("number=%D9%A1", "number"), ("number=" + "9" * 30, "number"),
                         ("number=1&number=2", "number"), (f"{UNKNOWN}=1", UNKNOWN)]:
        r = client.get(f"/crl/sign/g1/full.crl?{query}")
        assert r.status_code == 400, (query, r.status_code, r.get_data(as_text=True))
        assert r.json["field"] == field
    r = client.get("/crl/sign/g1/full.crl?number=1")
    assert r.status_code == 200 and r.data[:1] == b"\x30"
    # time travel per request: a duration too long for a timedelta was an OverflowError
    for header in ("+9999999999999d", "+999999999d", "\u0661d", "0001-01-01T00:00:00+09:00"):
        r = client.get("/crl/sign/g1/full.crl", headers={"X-JPKI-Mock-Time": header})
        assert r.status_code == 400 and "X-JPKI-Mock-Time" in r.get_data(as_text=True), (header, r.status_code)


def test_revoking_a_ca_with_reason_and_confirmation(tmp_path):
    rt = open_runtime(tmp_path / "data")
    try:
        w = World(rt, populate=False)
        r = w.request("post", "/cas/auth/1/revoke", json={"reason": "keyCompromise", "confirm": "auth-g1"})
        assert r.status_code == 200, r.json
        assert r.json == {"issuer": "auth-g1", "revoked_at": "2026-11-26T03:00:00Z", "reason": "keyCompromise"}
        assert [i.label for i in rt.authority.issuers() if i.revoked_at is not None] == ["auth-g1"]
        # the ARL names it (parsed back as DER)
        from asn1crypto import crl as asn1_crl

        w.ok("post", "/crl/publish", json={"ca": "auth-g1", "partition": "arl"})
        arl = Client(create_app(rt)).get("/crl/auth/g1/arl.crl")
        entries = asn1_crl.CertificateList.load(arl.data)["tbs_cert_list"]["revoked_certificates"]
        serial = rt.authority.issuer("auth", 1).certificate.serial_number
        assert [e["user_certificate"].native for e in entries] == [serial]
        r = w.request("post", "/cas/auth/1/revoke", json={"reason": "keyCompromise", "confirm": "auth-g1"})
        assert r.status_code == 409 and r.json["error"] == "already_revoked"
    finally:
        rt.close()


def test_the_service_itself_requires_the_confirmation(tmp_path):
    """Every edge (API, CLI, the planned console) calls this one function: it holds the rule."""
    from jpki_mock.errors import InvalidInput

    rt = open_runtime(tmp_path / "data")
    try:
        with pytest.raises(InvalidInput) as exc:
            rt.authority.revoke_ca("sign", 1, "keyCompromise", None)
        assert exc.value.field == "confirm" and exc.value.allowed == ["sign-g1"]
        with pytest.raises(InvalidInput) as exc:
            rt.authority.revoke_ca("sign", 1, None, "sign-g1")
        assert exc.value.field == "reason"
        assert all(i.revoked_at is None for i in rt.authority.issuers())
        assert rt.authority.revoke_ca("sign", "1", "cACompromise", "sign-g1").label == "sign-g1"
    finally:
        rt.close()


# ---------------------------------------------------------------- the CLI
@pytest.fixture
def cli(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from jpki_mock.cli import main
    from tests.support import PASSPHRASE

    monkeypatch.setenv("JPKI_MOCK_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("JPKI_MOCK_KEY_PASSPHRASE", PASSPHRASE)
    runner = CliRunner()

    def run(*args: str, code: int = 0, input: str | None = None) -> Any:
        result = runner.invoke(main, list(args), input=input, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    run("init")
    return run


def test_cli_ca_revoke_needs_reason_and_confirmation(cli, monkeypatch):
    from jpki_mock.ca import cli as ca_cli

    base = ("ca", "revoke", "--kind", "auth", "--generation", "1")
    assert "Missing option '--reason'" in cli(*base, code=2).output
    r = cli(*base, "--reason", "keyCompromise", code=2)  # not a terminal: must say what to pass
    assert "error: confirm: is required to revoke a CA: pass --confirm auth-g1" in r.output
    r = cli(*base, "--reason", "keyCompromise", "--confirm", "sign-g1", code=2)
    assert "needs confirm='auth-g1'" in r.output
    assert "active" in cli("ca", "list").output.splitlines()[0]
    monkeypatch.setattr(ca_cli, "stdin_is_terminal", lambda: True)
    r = cli(*base, "--reason", "keyCompromise", input="auth-g2\n", code=2)  # typed the wrong name
    assert "Type auth-g1 to confirm" in r.output and "does not name the CA" in r.output
    r = cli(*base, "--reason", "keyCompromise", input="auth-g1\n")
    assert "revoked auth-g1 at" in r.output
    r = cli("ca", "revoke", "--kind", "sign", "--generation", "1", "--reason", "keyCompromise", "--confirm", "sign-g1")
    assert "revoked sign-g1" in r.output
    assert all("revoked" in line for line in cli("ca", "list").output.splitlines())


# ---------------------------------------------------------------- learning what each endpoint accepts
def accepted(world: World) -> dict[tuple[str, str], dict[str, list[str]]]:
    """Per endpoint, the query parameters and body fields it accepts, read from the 400 that an
    unknown one gets; and the check that every endpoint refuses unknown ones (nothing changed)."""
    out = {}
    for method, rule, args in admin_rules(world.app):
        path = fill(rule, {a: world.valid_segment(a, rule) for a in args})
        before = world.snapshot()
        r = world.request(method, f"{path}?{UNKNOWN}=1", json={} if method != "GET" else None)
        err = assert_json_error(r, f"{method} {path}?{UNKNOWN}=1")
        assert r.status_code == 400 and err.get("field") == UNKNOWN, f"{method} {rule}: {err}"
        assert world.snapshot() == before, f"{method} {rule}"
        found = {"query": list(err["allowed"]), "body": []}
        if method != "GET":
            r = world.request(method, path, json={UNKNOWN: 1})
            err = assert_json_error(r, f"{method} {path} {{{UNKNOWN}: 1}}")
            assert r.status_code == 400 and err.get("field") == UNKNOWN, f"{method} {rule}: {err}"
            assert world.snapshot() == before, f"{method} {rule}"
            found["body"] = list(err["allowed"])
        out[(method, rule)] = found
    return out


def test_every_admin_endpoint_refuses_unknown_fields_and_parameters(world):
    table = accepted(world)
    assert len(table) >= 30  # every blueprint is mounted: ca, crl, ocsp, kit card, clock
    assert table[("POST", f"{PREFIX}/cas/<kind>/<generation>/revoke")]["body"] == ["confirm", "reason"]
    assert table[("GET", f"{PREFIX}/certificates/expiring")]["query"] == ["days", "limit", "offset"]


# ---------------------------------------------------------------- property-based
SURROGATE = "\ud800"
HOSTILE_TEXT = ["", "0", "1", "-1", "00001", "²", "¹", "٣", "\uff11\uff12", "1_000", " 1", "1 ", "0x10", "0X1F", "1e3",
                "+1",
                "9" * 19, "9" * 25, "9" * 60, "-" + "9" * 25, SURROGATE, "a" + SURROGATE, "\udfff", "\x00", "a\x00",
                "\u202e", "\ufffd", "g1", "sign", "auth", "sign-g1", "auth-g1", "sign-g²", "sign-g" + "9" * 25,
                "both", "full", "arl", "13101", "keyCompromise", "cACompromise", "certificateHold", "death", "loss",
                "renewal", "change", "request", "card_return", "pem", "der", "json", "good", "revoked", "hold",
                "2026-01-01", "\uff12\uff10\uff12\uff16-01-01", "1d", "+1h", "99999999999d", "2027-01-01T00:00:00Z",
                "0001-01-01T00:00:00+09:00", "1234", "ABC123", "AAAA", "x" * 300, "\uff21\uff22\uff23"]
HOSTILE_INTS = [0, 1, -1, 2, 3650, 3651, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, 2**159, 10**40, -(2**63) - 1]

scalars = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from(HOSTILE_INTS),
    st.text(max_size=12),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
json_keys = st.sampled_from(HOSTILE_TEXT[:30]) | st.text(max_size=5)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(json_keys, inner, max_size=3), max_leaves=8)


def nest(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"a": leaf}
    return leaf


#: a valid body for some endpoints (by the end of their rule): the fuzz also sends these with one
#: field replaced, dropped or joined by an unknown one, to reach the checks behind the first
CARD_BODIES = {
    "/card": {"auth_pin": "1234", "sign_password": "ABC123"},
    "/card/certificates/<kind>": {"password": "ABC123"},
    "/card/sign": {"password": "ABC123", "data_base64": "aGVsbG8=", "scheme": "cms"},
    "/card/authenticate": {"pin": "1234", "challenge_base64": "aGVsbG8="},
    "/card/export": {"kind": "auth", "pin": "1234", "pkcs12_passphrase": "pw1234"},
    "/card/unlock": {"kind": "auth"},
    "/card/reset": {"kind": "auth", "new_pin": "1234"},
}
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/holders": HOLDER,
    "/holders/<holder_id>/certificates": {"kinds": "auth", "pkcs12_passphrase": "pw1234"},
    "/holders/<holder_id>/events": {"event": "change", "changes": {"address": "東京都千代田区千代田2-2"}},
    "/cas/<kind>/<generation>/revoke": {"reason": "keyCompromise", "confirm": "sign-g1"},
    "/relying-parties": {"name": "clinic-b", "kinds": "auth"},
    "/tokens": {"label": "ci"},
    "/crl/publish": {"ca": "sign-g1", "partition": "13101"},
    "/clock/advance": {"by": "1d"},
    "/clock/set": {"at": "2027-01-01T00:00:00Z"},
    "/seed": {"holders": 1},
    **{f"/holders/<holder_id>{k}": v for k, v in CARD_BODIES.items()},
}


def valid_body(rule: str) -> dict[str, Any] | None:
    return VALID_BODIES.get(rule.removeprefix(PREFIX))


@st.composite
def bodies(draw: st.DrawFn, fields: list[str], valid: dict[str, Any] | None) -> dict[str, Any]:
    """A request body: a valid one with one field made hostile, a JSON object over the
    endpoint's fields (and unknown ones), or raw bytes that are hostile before parsing (deep
    nesting, bad UTF-8, not an object, NaN, huge numbers)."""
    choice = draw(st.integers(0, 9))
    if valid is not None and choice >= 5:
        obj = dict(valid)
        key = draw(st.sampled_from(sorted({*obj, *fields, UNKNOWN})))
        if draw(st.booleans()) and key in obj:
            del obj[key]
        else:
            obj[key] = draw(json_values)
        return {"data": json.dumps(obj, ensure_ascii=True, allow_nan=True).encode(), "content_type": JSON}
    if choice == 0:
        raw = draw(st.sampled_from([
            b"[" * 5000, b"{\"a\":" * 40 + b"1" + b"}" * 40, b"\xff\xfe{}", b"[]", b"\"x\"", b"null", b"{\"a\": NaN}",
            b"{\"a\": 1" + b"0" * 4400 + b"}", b"{\"a\": \"\\ud800\"}", b"{", b"{}" + b" " * 10, b"{\"a\":1,\"a\":2}",
        ]))
        ctype = draw(st.sampled_from([JSON, "text/plain", "application/json; charset=utf-8"]))
        return {"data": raw, "content_type": ctype}
    hostile_keys = st.sampled_from([UNKNOWN, "", SURROGATE, "\x00", "Reason", "reason "])
    if not fields:
        keys = hostile_keys
    elif draw(st.integers(0, 3)) == 0:
        keys = st.sampled_from(fields) | hostile_keys
    else:
        keys = st.sampled_from(fields)
    obj = draw(st.dictionaries(keys, json_values, max_size=len(fields) + 1))
    if obj and draw(st.integers(0, 5)) == 0:  # one value nested around the depth limit
        key = draw(st.sampled_from(sorted(obj)))
        obj[key] = nest(draw(st.integers(MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH + 3)), obj[key])
    text = json.dumps(obj, ensure_ascii=True, allow_nan=True)  # \\ud800 escapes reach the parser as such
    return {"data": text.encode(), "content_type": JSON}


def queries(params: list[str]) -> st.SearchStrategy[str]:
    names = st.sampled_from([*params, UNKNOWN, "format", "limit", "offset"])
    values = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=8)

    def encode(pairs: list[tuple[str, str]]) -> str:
        return urlencode([(k, v.encode("utf-8", "surrogatepass")) for k, v in pairs])
    return st.just("") | st.lists(st.tuples(names, values), min_size=1, max_size=3).map(encode)


def test_hostile_requests_to_every_admin_endpoint(tmp_path_factory, request):
    """Every rule of the admin url_map, hostile path segments, query strings and bodies: only
    2xx/4xx, JSON errors, and a store untouched by every rejected request."""
    for backend in ("sqlite", "postgresql"):
        world = make_world(tmp_path_factory, backend)
        try:
            run_fuzz(world, request)
        finally:
            world.rt.close()


def run_fuzz(world: World, request: pytest.FixtureRequest) -> None:
    table = accepted(world)
    endpoints = sorted(table)
    stats = {"requests": 0, "2xx": 0, "4xx": 0}

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        method, rule = data.draw(st.sampled_from(endpoints), label="endpoint")
        accepts = table[(method, rule)]
        args = re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", rule)
        # Mostly one hostile part at a time (path, query or body), so the checks behind the
        # first one are reached too.
        hostile = data.draw(st.sampled_from(["path", "query", "body", "body", "all"]), label="hostile part")
        segments = {a: data.draw(st.sampled_from(HOSTILE_TEXT[:40]) | st.text(min_size=1, max_size=8), label=a)
                    if hostile in ("path", "all") else world.valid_segment(a, rule) for a in args}
        path = fill(rule, segments)
        query = data.draw(queries(accepts["query"]), label="query") if hostile in ("query", "all") else ""
        valid = valid_body(rule)
        if method == "GET":
            kw: dict[str, Any] = {}
        elif hostile in ("body", "all") or valid is None:
            kw = data.draw(bodies(accepts["body"], valid), label="body")
        else:
            kw = {"json": valid}
        before = world.snapshot()
        r = world.request(method, f"{path}?{query}" if query else path, **kw)
        err = assert_json_error(r, f"{method} {path}?{query} {kw}")
        stats["requests"] += 1
        if r.status_code >= 400:
            stats["4xx"] += 1
            after = world.snapshot()
            if err.get("error") == "wrong_pin":  # counting wrong tries is the card's job (kit/card.py)
                before.pop("cards"), after.pop("cards")
            assert after == before, f"{method} {path}?{query} {kw} -> {r.status_code} {err} changed it"
            if err.get("error") in ("invalid_input", "malformed", "too_large"):
                assert isinstance(err.get("field"), str), err
        else:
            stats["2xx"] += 1

    one()
    line = (f"fuzz ({world.rt.store.engine.dialect.name}): {stats['requests']} requests over {len(endpoints)} "
            f"endpoints: {stats['2xx']} 2xx, {stats['4xx']} 4xx, 0 5xx")
    request.node.user_properties.append(("fuzz", line))
    print(line)
    assert stats["requests"] >= FUZZ_EXAMPLES // 2


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_holder_added_after_a_seed_gets_a_new_id(tmp_path_factory, backend):
    """Found by the fuzz on PostgreSQL: the seed chose holder ids itself without moving the
    table's sequence, so the next ``POST /holders`` reused an id (IntegrityError, a 500)."""
    url = "" if backend == "sqlite" else fresh_pg_database()
    world = World(open_runtime(tmp_path_factory.mktemp(f"seed-{backend}"), database_url=url), populate=False)
    try:
        assert world.ok("post", "/seed", json={"holders": 3})["holders"] == 3
        assert world.ok("post", "/holders", json=HOLDER)["id"] == 4
        assert world.ok("post", "/seed", json={"holders": 2})["holders"] == 2
        assert world.ok("post", "/holders", json=HOLDER)["id"] == 7
    finally:
        world.rt.close()
