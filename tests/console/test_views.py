"""The console's pages through Flask's test client: sign-in, sessions, CSRF, languages, bad
input, and writes that land in the same store the admin API reads."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asn1crypto import ocsp as aocsp
from flask.testing import FlaskClient
from sqlalchemy import func, select

from jpki_mock.app import create_app
from jpki_mock.ca.models import Holder
from tests.support.pki import HOLDER

BASIC = {k: HOLDER[k] for k in ("name", "date_of_birth", "gender", "address") if k in HOLDER}


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


@pytest.fixture
def app(rt: Any) -> Any:
    return create_app(rt).default


@pytest.fixture
def token(rt: Any) -> str:
    return str(rt.registry.create_token("console-test"))


def sign_in(client: FlaskClient, token: str) -> str:
    page = client.get("/console/login").get_data(as_text=True)
    resp = client.post("/console/login", data={"csrf_token": csrf(page), "token": token, "next": "/console/"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/console/"
    return csrf(client.get("/console/").get_data(as_text=True))


def fetch(client: FlaskClient, path: str) -> bytes:
    """A file response's body, the response closed (send_file keeps the file open until then)."""
    with client.get(path) as resp:
        assert resp.status_code == 200, path
        return resp.get_data()


def holders(rt: Any) -> int:
    with rt.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Holder)) or 0)


def test_pages_other_than_the_explainer_need_sign_in(app: Any) -> None:
    client = app.test_client()
    for path in ("/console/", "/console/holders", "/console/crls", "/console/clock", "/console/scenarios",
                 "/console/reports", "/console/holders/new"):
        resp = client.get(path)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/console/login"), path
    assert client.get("/console/explain").status_code == 200


def test_session_cookie_is_httponly_samesite_strict_and_holds_no_token(app: Any, token: str) -> None:
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    resp = client.post("/console/login", data={"csrf_token": csrf(page), "token": token})
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("jpki_mock_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert token not in cookie


def test_wrong_token_is_refused_and_signs_nobody_in(app: Any) -> None:
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    resp = client.post("/console/login", data={"csrf_token": csrf(page), "token": "jpkim_wrong"})
    assert resp.status_code == 401
    assert "not a live admin token" in resp.get_data(as_text=True)
    assert client.get("/console/").status_code == 302


def test_revoking_the_token_ends_its_sessions(app: Any, rt: Any, token: str) -> None:
    client = app.test_client()
    sign_in(client, token)
    assert client.get("/console/").status_code == 200
    rt.registry.revoke_token("console-test")
    assert client.get("/console/").status_code == 302


def test_post_without_or_with_a_wrong_csrf_token_is_403_and_changes_nothing(app: Any, rt: Any, token: str) -> None:
    client = app.test_client()
    sign_in(client, token)
    before = holders(rt)
    for form in ({**BASIC}, {**BASIC, "csrf_token": "forged"}):
        resp = client.post("/console/holders/new", data=form)
        assert resp.status_code == 403
        assert "CSRF" in resp.get_data(as_text=True)
    assert holders(rt) == before


def test_holder_created_in_the_console_is_the_apis_holder(app: Any, rt: Any, token: str) -> None:
    client = app.test_client()
    token_csrf = sign_in(client, token)
    resp = client.post("/console/holders/new", data={"csrf_token": token_csrf, **BASIC})
    assert resp.status_code == 302
    holder_id = resp.headers["Location"].rsplit("/", 1)[1]
    api = client.get(f"/admin/api/holders/{holder_id}", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert api["name"] == HOLDER["name"] and api["address"] == HOLDER["address"]


def test_bad_holder_input_names_the_field_and_writes_nothing(app: Any, rt: Any, token: str) -> None:
    client = app.test_client()
    token_csrf = sign_in(client, token)
    before = holders(rt)
    resp = client.post("/console/holders/new", data={"csrf_token": token_csrf, **BASIC, "date_of_birth": "1990-13-45"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "<code>date_of_birth</code>" in page and 'value="1990-13-45"' in page  # the form as it was
    assert holders(rt) == before


def test_move_house_revokes_the_signature_certificate_and_ocsp_says_so(app: Any, rt: Any, token: str) -> None:
    client = app.test_client()
    token_csrf = sign_in(client, token)
    holder_id = client.post("/console/holders/new", data={"csrf_token": token_csrf, **BASIC}) \
        .headers["Location"].rsplit("/", 1)[1]
    resp = client.post(f"/console/holders/{holder_id}/card",
                       data={"csrf_token": token_csrf, "auth_pin": "1234", "sign_password": "ABC123"})
    assert resp.status_code == 302
    page = client.post(f"/console/holders/{holder_id}/events",
                       data={"csrf_token": token_csrf, "button": "move", "address": "東京都中央区銀座1-1",
                             "municipality": "13102"}).get_data(as_text=True)
    assert "affiliationChanged" in page
    sign = next(c for c in rt.authority.get_holder(holder_id).certificates if c.kind == "sign")
    assert sign.status == "revoked"
    page = client.post(f"/console/certificates/sign-g1/{sign.serial}/ocsp",
                       data={"csrf_token": token_csrf, "method": "POST", "hash": "sha1"}).get_data(as_text=True)
    assert 'id="ocsp-status">revoked' in page and 'id="ocsp-reason">affiliationChanged' in page


def test_ocsp_probe_shows_the_exact_response_bytes(app: Any, rt: Any, token: str) -> None:
    client = app.test_client()
    token_csrf = sign_in(client, token)
    holder = rt.authority.create_holder(HOLDER)
    cert = rt.authority.issue(holder.id, "auth", pkcs12_passphrase="p-123456")[0].certificate
    page = client.post(f"/console/certificates/auth-g1/{cert.serial}/ocsp",
                       data={"csrf_token": token_csrf, "method": "GET", "hash": "sha256", "nonce": "on"}) \
        .get_data(as_text=True)
    view = page.split('id="hex-resp"')[1].split("</div></div>")[0]
    hexed = "".join(re.findall(r'<span class="b" data-i="\d+">([0-9a-f]{2})</span>', view))
    # The hex view of the response is a whole OCSP response asn1crypto reads back, with our nonce.
    resp = aocsp.OCSPResponse.load(bytes.fromhex(hexed))
    assert resp["response_status"].native == "successful"
    basic = resp.basic_ocsp_response["tbs_response_data"]
    assert basic["responses"][0]["cert_status"].name == "good"
    assert basic["response_extensions"][0]["extn_id"].native == "nonce"


@pytest.mark.parametrize(("form", "field"), [
    ({"method": "PUT"}, "method"),
    ({"hash": "md5"}, "hash"),
])
def test_ocsp_probe_bad_choices(app: Any, rt: Any, token: str, form: dict[str, str], field: str) -> None:
    client = app.test_client()
    token_csrf = sign_in(client, token)
    holder = rt.authority.create_holder(HOLDER)
    cert = rt.authority.issue(holder.id, "auth", pkcs12_passphrase="p-123456")[0].certificate
    resp = client.post(f"/console/certificates/auth-g1/{cert.serial}/ocsp", data={"csrf_token": token_csrf, **form})
    assert resp.status_code == 400 and f"<code>{field}</code>" in resp.get_data(as_text=True)


def test_language_switch(app: Any, token: str) -> None:
    client = app.test_client()
    sign_in(client, token)
    assert "Overview" in client.get("/console/").get_data(as_text=True)
    resp = client.get("/console/lang/ja?next=/console/")
    assert resp.status_code == 302
    page = client.get("/console/").get_data(as_text=True)
    assert 'lang="ja"' in page and "概要" in page and "署名用電子証明書" in page
    assert client.get("/console/lang/fr").status_code == 404
    # Accept-Language picks Japanese for a first visit.
    fresh = app.test_client()
    assert 'lang="ja"' in fresh.get("/console/explain", headers={"Accept-Language": "ja,en;q=0.5"}).get_data(
        as_text=True)


def test_unknown_pages_and_numbers_are_404_pages_not_tracebacks(app: Any, token: str) -> None:
    client = app.test_client()
    sign_in(client, token)
    for path in ("/console/holders/999999", "/console/certificates/sign-g1/123456789",
                 "/console/crls/sign/g1/full", "/console/holders?page=0", "/console/nowhere"):
        resp = client.get(path)
        assert resp.status_code in (400, 404), path
        assert "Traceback" not in resp.get_data(as_text=True)


def test_report_files_cannot_escape_their_folder(app: Any, token: str) -> None:
    client = app.test_client()
    sign_in(client, token)
    assert client.get("/console/reports/x/..%2F..%2Fpyproject.toml").status_code == 404
    assert client.get("/console/scenarios/files/../jpki-mock.toml").status_code == 404


def test_crl_page_lists_entries_and_the_difference_between_two_numbers(app: Any, rt: Any, token: str) -> None:
    from jpki_mock.crl.publisher import CrlDeps, Publisher

    client = app.test_client()
    sign_in(client, token)
    pub = Publisher(CrlDeps.of(rt))
    full = [s for s in pub.select("sign", "full") if not s.delta]
    pub.publish_many(full)
    holder = rt.authority.create_holder(HOLDER)
    cert = rt.authority.issue(holder.id, "sign", pkcs12_passphrase="p-123456")[0].certificate
    rt.authority.revoke("sign-g1", cert.serial, "keyCompromise")
    pub.publish_many(full)
    page = client.get(f"/console/crls/sign/g1/full?number=2&compare=1&serial={cert.serial}").get_data(as_text=True)
    assert f"<code>{cert.serial}</code> (keyCompromise)" in page.split('id="diff"')[1]
    assert "keyCompromise" in page.split('id="serial-result"')[1].split("</p>")[0]
    # The CRL's own tree: its cRLNumber named and explained.
    assert "crl_number" in page and "RFC 5280 §5.2.3" in page
    assert client.get("/console/crls/sign/g1/full?number=99").status_code == 404


def test_clock_page_moves_the_travelling_clock(rt_factory: Any, tmp_path: Any) -> None:
    from jpki_mock.travel import TravellingClock

    runtime = rt_factory(tmp_path / "travel", time_travel=True)
    assert isinstance(runtime.clock, TravellingClock)
    client = create_app(runtime).default.test_client()
    token_csrf = sign_in(client, runtime.registry.create_token("t"))
    before = runtime.clock.now()
    resp = client.post("/console/clock", data={"csrf_token": token_csrf, "action": "advance", "by": "2d"})
    assert resp.status_code == 302
    assert (runtime.clock.now() - before).days >= 2
    resp = client.post("/console/clock", data={"csrf_token": token_csrf, "action": "advance", "by": "soon"})
    assert resp.status_code == 400 and "<code>by</code>" in resp.get_data(as_text=True)
    client.post("/console/clock", data={"csrf_token": token_csrf, "action": "reset"})
    assert runtime.clock.describe()["offset_seconds"] == 0


def test_clock_page_without_time_travel_says_how_to_enable_it(app: Any, token: str) -> None:
    client = app.test_client()
    token_csrf = sign_in(client, token)
    assert 'id="clock-disabled"' in client.get("/console/clock").get_data(as_text=True)
    resp = client.post("/console/clock", data={"csrf_token": token_csrf, "action": "advance", "by": "1d"})
    assert resp.status_code == 409 and "JPKI_MOCK_TIME_TRAVEL" in resp.get_data(as_text=True)


def test_scenarios_and_reports_pages_serve_their_files(app: Any, rt: Any, token: str, tmp_path: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    from pathlib import Path

    from jpki_mock.kit.scenarios import CATALOG_NAME

    client = app.test_client()
    sign_in(client, token)
    built = Path(rt.config.data_dir) / "scenarios"
    (built / "certs").mkdir(parents=True)
    (built / "certs" / "valid-sign.pem").write_text("PEM")
    manifest = {"catalog": CATALOG_NAME, "built_at": "2026-12-04T00:00:00Z",
                "items": [{"name": "valid-sign", "files": {"pem": "certs/valid-sign.pem"}}]}
    (built / "manifest.json").write_text(json.dumps(manifest))
    page = client.get("/console/scenarios").get_data(as_text=True)
    assert "valid-sign" in page and "/console/scenarios/files/scenarios/certs/valid-sign.pem" in page
    assert fetch(client, "/console/scenarios/files/scenarios/certs/valid-sign.pem") == b"PEM"
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "loadtest" / "reports" / "smoke-20261204T000000Z"
    report.mkdir(parents=True)
    (report / "summary.txt").write_text("ok=1")
    assert "smoke-20261204T000000Z" in client.get("/console/reports").get_data(as_text=True)
    assert fetch(client, "/console/reports/smoke-20261204T000000Z/summary.txt") == b"ok=1"


def test_console_changes_are_audited_as_the_signed_in_token_and_reads_are_not(app: Any, rt: Any,
                                                                             token: str) -> None:
    from jpki_mock import audit

    client = app.test_client()
    token_csrf = sign_in(client, token)
    client.post("/console/holders/new", data={"csrf_token": token_csrf, **BASIC})
    client.post("/console/holders/new", data={"csrf_token": token_csrf, **BASIC, "gender": "9"})
    client.post("/console/explain", data={"csrf_token": token_csrf, "input": "not an artefact"})
    rows = [(e.actor, e.action, e.result) for e in reversed(audit.entries(rt.store))]
    assert rows == [("console:console-test", "holder.add", "ok"),
                    ("console:console-test", "holder.add", "invalid_input")]
    # The overview shows them.
    page = client.get("/console/").get_data(as_text=True)
    assert page.count("console:console-test") == 2


def test_renewal_of_a_found_card_renews_onto_the_card_and_shows_what_it_revoked(app: Any, rt: Any,
                                                                              token: str) -> None:
    client = app.test_client()
    token_csrf = sign_in(client, token)
    holder_id = client.post("/console/holders/new", data={"csrf_token": token_csrf, **BASIC}) \
        .headers["Location"].rsplit("/", 1)[1]
    client.post(f"/console/holders/{holder_id}/card",
                data={"csrf_token": token_csrf, "auth_pin": "1234", "sign_password": "ABC123"})
    page = client.post(f"/console/holders/{holder_id}/events",
                       data={"csrf_token": token_csrf, "button": "loss"}).get_data(as_text=True)
    assert page.split('id="event-result"')[1].split("</section>")[0].count("certificateHold") == 2
    page = client.post(f"/console/holders/{holder_id}/events",
                       data={"csrf_token": token_csrf, "button": "renewal", "auth_pin": "4321",
                             "sign_password": "NEW2026"}).get_data(as_text=True)
    assert page.split('id="event-result"')[1].split("</section>")[0].count("superseded") == 2
    certs = rt.authority.get_holder(holder_id).certificates
    assert sorted((c.kind, c.status) for c in certs if c.status == "good") == [("auth", "good"), ("sign", "good")]


def test_reset_removes_the_console_session_key(app: Any, rt: Any, token: str) -> None:
    from pathlib import Path

    from jpki_mock import datadir

    sign_in(app.test_client(), token)
    key = Path(rt.config.data_dir) / "console-session.key"
    assert key.stat().st_mode & 0o777 == 0o600
    # The console's key is the instance's own: reset lists it to remove (no "foreign entry" refusal).
    assert key in datadir.plan_reset(rt.config.data_dir).remove
