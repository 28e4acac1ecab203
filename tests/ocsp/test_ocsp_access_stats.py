"""Access control for registered relying parties, and the lookup counters."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.x509 import ocsp

from jpki_mock.clock import JST
from jpki_mock.ocsp import stats
from tests.support.ocsp import call, get_path, ocsp_app, request_der

S = ocsp.OCSPResponseStatus


@pytest.fixture
def parties(ort):
    names = {}
    for kinds in ("sign", "auth", "both"):
        name = f"rp-{kinds}-{uuid.uuid4().hex[:6]}"
        _, credential = ort.registry.add_relying_party(name, kinds)
        names[kinds] = (name, credential)
    return names


def test_access_control_answers_only_registered_parties_for_their_kinds(make_app, items, parties):
    app = make_app(access_control=True)
    sign, auth = items
    for path in (get_path(request_der(sign)), get_path(request_der(auth))):
        assert call(app, "GET", path).ocsp.response_status == S.UNAUTHORIZED  # no credential
        wrong = call(app, "GET", path, headers={"Authorization": "Bearer rp_wrong"})
        assert wrong.ocsp.response_status == S.UNAUTHORIZED
    _, sign_cred = parties["sign"]
    _, auth_cred = parties["auth"]
    _, both_cred = parties["both"]
    ok = S.SUCCESSFUL
    bearer_sign = {"Authorization": f"Bearer {sign_cred}"}
    header_auth = {"X-JPKI-Relying-Party": auth_cred}
    assert call(app, "GET", get_path(request_der(sign)), headers=bearer_sign).ocsp.response_status == ok
    assert call(app, "GET", get_path(request_der(auth)), headers=bearer_sign).ocsp.response_status == S.UNAUTHORIZED
    assert call(app, "POST", "/", request_der(auth), headers=header_auth).ocsp.response_status == ok
    assert call(app, "POST", "/", request_der(sign), headers=header_auth).ocsp.response_status == S.UNAUTHORIZED
    for item in items:  # twice: the second answer comes from the pre-signed cache, still checked
        for _ in range(2):
            resp = call(app, "GET", get_path(request_der(item)), headers={"Authorization": f"Bearer {both_cred}"})
            assert resp.ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert call(app, "GET", get_path(request_der(item))).ocsp.response_status == S.UNAUTHORIZED


def test_counters_by_kind_status_party_and_day(make_app, items, ort, parties):
    app = make_app(access_control=True)
    name, cred = parties["both"]
    hdr = {"Authorization": f"Bearer {cred}"}
    sign, auth = items
    ort.authority.revoke("auth", auth.serial, "keyCompromise")
    for _ in range(3):
        call(app, "GET", get_path(request_der(sign)), headers=hdr)
    call(app, "POST", "/", request_der(auth, nonce=b"n" * 16), headers=hdr)
    call(app, "GET", get_path(request_der(sign)))  # no credential
    call(app, "POST", "/", b"junk")
    app.counters.flush()
    day = ort.clock.now().astimezone(JST).date().isoformat()
    rows = {(r["kind"], r["status"], r["relying_party"]): r["count"] for r in stats.rows(ort.store) if r["day"] == day}
    assert rows[("sign", "good", name)] == 3
    assert rows[("auth", "revoked", name)] == 1
    assert rows[("sign", "unauthorized", "-")] >= 1
    assert rows[("-", "malformedRequest", "-")] >= 1
    # flushing again adds nothing twice
    before = stats.summary(ort.store)["total"]
    app.counters.flush()
    assert stats.summary(ort.store)["total"] == before


@pytest.mark.parametrize("access_control", [True, False])
def test_hot_path_counts_go_to_the_jst_day_they_happen_on(make_app, items, ort, parties, access_control):
    """The hot path counts on a tally per relying party and day (ocsp.stats.Counters.tally): at
    midnight JST it must move to the next day's, with access control (the party's cached
    credential ends with the day) and without."""
    app = make_app(access_control=access_control)
    name, cred = parties["both"] if access_control else ("-", None)
    hdr = {"Authorization": f"Bearer {cred}"} if access_control else {}
    path = get_path(request_der(items[0]))
    before_midnight = datetime(2026, 11, 26, 14, 59, 58, tzinfo=UTC)  # 23:59:58 JST
    ort.clock.set(before_midnight)
    for _ in range(3):  # the first is signed, the others come from the hot path
        assert call(app, "GET", path, headers=hdr).ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    ort.clock.set(before_midnight + timedelta(seconds=3))  # 00:00:01 JST on the 27th
    for _ in range(4):
        assert call(app, "GET", path, headers=hdr).ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    totals = app.counters.totals()
    assert totals[("2026-11-26", "sign", "good", name)] == 3
    assert totals[("2026-11-27", "sign", "good", name)] == 4
    if access_control:
        app.counters.flush()
        rows = {r["day"]: r["count"] for r in stats.rows(ort.store) if r["relying_party"] == name}
        assert rows == {"2026-11-26": 3, "2026-11-27": 4}


def test_every_answer_the_responder_gives_has_a_counter():
    """Counters hold a slot per (kind, status): a label without one would turn counting into an
    internalError."""
    from jpki_mock.ocsp.answer import LABEL_FOR_STATUS

    labels = set(LABEL_FOR_STATUS.values()) | {"good", "revoked", "unknown"}
    assert {(kind, label) for kind in ("sign", "auth", "-") for label in labels} <= set(stats.SLOTS)


def test_metrics_endpoint_is_prometheus_text(app, items):
    call(app, "GET", get_path(request_der(items[0])))
    resp = call(app, "GET", "/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = resp.body.decode()
    assert "# TYPE jpki_ocsp_lookups_total counter" in text
    prefix = 'jpki_ocsp_lookups_total{kind="sign",status="good",relying_party="-"'
    line = [ln for ln in text.splitlines() if ln.startswith(prefix)]
    assert line and int(line[0].rsplit(" ", 1)[1]) >= 1


def test_hot_path_counts_without_touching_the_store(app, items, ort, monkeypatch):
    path = get_path(request_der(items[0]))
    call(app, "GET", path)
    monkeypatch.setattr(ort.store, "engine", None)  # any store access would now fail
    for _ in range(5):
        assert call(app, "GET", path).status == 200
    monkeypatch.undo()
    assert sum(v for (d, k, s, p), v in app.counters.totals().items() if (k, s) == ("sign", "good")) == 6


def test_admin_api_and_cli_summary(ort, items):
    from flask.testing import FlaskClient  # noqa: F401 - the admin app is Flask

    from jpki_mock.app import create_admin_app

    app = ocsp_app(ort)
    call(app, "GET", get_path(request_der(items[1])))
    app.counters.flush()
    admin = create_admin_app(ort).test_client()
    hdr = {"Authorization": f"Bearer {ort.token}"}
    resp = admin.get("/admin/api/ocsp/stats", headers=hdr)
    assert resp.status_code == 200
    data = resp.get_json()
    assert data["by_kind"]["auth"]["good"] >= 1 and data["total"] >= 1
    bad = admin.get("/admin/api/ocsp/stats?since=yesterday", headers=hdr)
    assert bad.status_code == 400 and bad.get_json()["field"] == "since"
    assert admin.get("/admin/api/ocsp/stats").status_code == 401

    from click.testing import CliRunner

    from jpki_mock.cli import main

    env = {"JPKI_MOCK_DATA": str(ort.config.data_dir), "JPKI_MOCK_KEY_PASSPHRASE": ort.config.key_passphrase}
    result = CliRunner().invoke(main, ["ocsp", "stats", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["by_kind"]["auth"]["good"] >= 1
    result = CliRunner().invoke(main, ["ocsp", "stats", "--since", "2026-13-01"], env=env)
    assert result.exit_code == 2 and "--since" in result.output


@pytest.mark.parametrize("header", ["Authorization", "X-JPKI-Relying-Party"])
def test_registered_party_served_from_the_hot_path(make_app, items, ort, parties, monkeypatch, header):
    app = make_app(access_control=True)
    _, cred = parties["sign"]
    headers = {header: f"Bearer {cred}" if header == "Authorization" else cred}
    path = get_path(request_der(items[0]))
    assert call(app, "GET", path, headers=headers).ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    monkeypatch.setattr(ort.store, "engine", None)  # a hit needs neither the store nor a credential lookup
    assert call(app, "GET", path, headers=headers).ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    monkeypatch.undo()
    # the same credential for the other kind is still refused, from the cache too
    assert call(app, "GET", get_path(request_der(items[1])), headers=headers).ocsp.response_status == S.UNAUTHORIZED


def test_non_bearer_authorization_next_to_the_party_header(make_app, items, parties):
    app = make_app(access_control=True)
    _, cred = parties["sign"]
    path = get_path(request_der(items[0]))
    for _ in range(2):
        resp = call(app, "GET", path, headers={"Authorization": "Basic dXNlcjpwdw==", "X-JPKI-Relying-Party": cred})
        assert resp.ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    other = call(app, "GET", path, headers={"Authorization": "Basic dXNlcjpwdw==", "X-JPKI-Relying-Party": "rp_nope"})
    assert other.ocsp.response_status == S.UNAUTHORIZED
