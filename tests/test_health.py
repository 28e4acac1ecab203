"""``/healthz`` and ``/readyz`` on the combined app and the standalone responder's app, and the
admin API while the database is unreachable (a PostgreSQL URL nobody listens on): 503 with a
JSON error naming the database, logged once, never a 500 or a traceback.

The outage of a real, running PostgreSQL under load is tests/ocsp/test_ocsp_outage.py."""

from __future__ import annotations

import json
import logging

import pytest
from werkzeug.test import Client

from jpki_mock.app import create_admin_app, create_app
from jpki_mock.config import load_config
from jpki_mock.db import Store, StoreUnavailable
from jpki_mock.ocsp.http import OcspApp
from jpki_mock.runtime import Runtime
from tests.support import PASSPHRASE, free_port


def wsgi_get(app, path: str) -> tuple[int, dict, bytes]:
    resp = Client(app).get(path)
    return resp.status_code, dict(resp.headers), resp.data


def ocsp_app(rt: Runtime) -> OcspApp:
    return OcspApp(rt.config, rt.clock, rt.store, rt.status, rt.keyring, rt.epoch)


@pytest.fixture
def unreachable(tmp_path):
    """A runtime whose database is PostgreSQL on a port nobody listens on."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    runtime = Runtime.open(load_config({}, data_dir=tmp_path / "data", key_passphrase=PASSPHRASE, database_url=url))
    yield runtime
    runtime.close()


def test_probes_when_ready(rt):
    """Both probes on the combined app (Flask) and on the responder's own app (served at / by
    `jpki-mock ocsp serve`, mounted at /ocsp by `serve`)."""
    combined = create_app(rt)
    for app, prefix in ((combined, ""), (combined, "/ocsp"), (ocsp_app(rt), "")):
        status, headers, body = wsgi_get(app, prefix + "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "alive"})
        assert headers["Cache-Control"] == "no-store"
        status, headers, body = wsgi_get(app, prefix + "/readyz")
        assert (status, json.loads(body)) == (200, {"status": "ready"})
        assert headers["Content-Type"].startswith("application/json")


def test_metrics_at_the_root_of_the_combined_server(rt):
    """/metrics is where scrapers look; /ocsp/metrics (the responder's own path) stays."""
    combined = create_app(rt)
    status, _, body = wsgi_get(combined, "/ocsp/healthz")
    assert status == 200
    for path in ("/metrics", "/ocsp/metrics"):
        status, headers, body = wsgi_get(combined, path)
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"# TYPE jpki_ocsp_lookups_total counter" in body
    assert wsgi_get(combined, "/metrics/other")[0] == 404


def test_readyz_before_init(rt_factory):
    runtime = rt_factory(init=False)
    client = create_admin_app(runtime).test_client()
    assert client.get("/healthz").status_code == 200
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"
    assert resp.get_json()["error"] == "not_initialised" and resp.get_json()["field"] == "database"


def test_store_readiness_names_the_database(unreachable):
    err = unreachable.store.readiness()
    assert isinstance(err, StoreUnavailable)
    assert err.to_dict()["error"] == "storage_unavailable" and err.field == "database"
    assert str(err).startswith("database: the database is unreachable: ")
    assert "127.0.0.1" in err.message  # the DBAPI's own words: which server could not be reached


def test_admin_api_during_an_outage(unreachable, caplog):
    client = create_admin_app(unreachable).test_client()
    auth = {"Authorization": "Bearer whatever"}
    caplog.set_level(logging.INFO)
    answers = [client.get("/admin/api/cas", headers=auth), client.get("/admin/api/holders", headers=auth),
               client.post("/admin/api/certificates/sign/1000001/revoke", headers=auth,
                           json={"reason": "keyCompromise"}),
               client.get("/", headers=auth)]
    for resp in answers:
        assert resp.status_code == 503, resp.get_data(as_text=True)
        assert resp.headers["Retry-After"] == "1"
        body = resp.get_json()
        assert body["error"] == "storage_unavailable" and body["field"] == "database", body
        assert body["message"].startswith("database: the database is unreachable: ")
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["status"] == "not_ready"
    assert ready.get_json()["error"] == "storage_unavailable"
    # logged once for the outage, no traceback per request
    outage_lines = [r for r in caplog.records if "the database is unreachable" in r.getMessage()]
    assert len(outage_lines) == 1, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert unreachable.store.outage.failures >= len(answers)


def test_outage_ends_with_a_summary(rt, caplog):
    """The outage record closes, with its count, when a statement succeeds again."""
    caplog.set_level(logging.INFO, logger="jpki_mock.db")
    outage = rt.store.outage
    outage.report("a test outage")
    outage.report("a test outage")
    assert rt.store.is_initialised()
    assert outage.since is None
    messages = [r.getMessage() for r in caplog.records if r.name == "jpki_mock.db"]
    assert messages[0].startswith("the database is unreachable (a test outage)")
    assert messages[1].startswith("the database is reachable again after ")
    assert "2 requests were answered as an outage" in messages[1]
    assert len(messages) == 2


def test_sqlite_missing_table_is_not_an_outage(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert store.is_initialised() is False
        assert store.readiness().to_dict()["error"] == "not_initialised"
        assert store.outage.since is None
    finally:
        store.dispose()
