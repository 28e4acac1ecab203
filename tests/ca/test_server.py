"""The combined server as `make run` starts it: granian, 127.0.0.1, URLs printed, admin API behind a token."""

import requests


def test_server_serves_admin_api_with_token(server):
    index = requests.get(server.base + "/", timeout=5).json()
    assert index["ocsp"] == server.base + "/ocsp"
    assert requests.get(server.base + "/admin/api/cas", timeout=5).status_code == 401
    r = requests.get(server.base + "/admin/api/cas", headers={"Authorization": f"Bearer {server.token}"}, timeout=5)
    assert r.status_code == 200 and [c["issuer"] for c in r.json()] == ["auth-g1", "sign-g1"]
    log = server.log.read_text()
    assert f"OCSP      : {server.base}/ocsp" in log and "admin API" in log
    # Not Flask's development server.
    assert "Granian" in log or "granian" in log.lower()
    assert "Running on" not in log


def test_server_error_is_json_not_traceback(server):
    r = requests.post(server.base + "/admin/api/holders", data="{", headers={
        "Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 400 and r.json()["field"] == "body"
