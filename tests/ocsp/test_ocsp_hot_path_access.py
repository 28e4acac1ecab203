"""With access control on, a registered party's cached GET is still served by the hot path."""

from __future__ import annotations

from cryptography.x509 import ocsp

import jpki_mock.ocsp.http as ocsp_http
from tests.support.ocsp import call, get_path, request_der


def test_cached_get_with_access_control_takes_the_hot_path(make_app, items, ort, monkeypatch):
    app = make_app(access_control=True)
    credential = ort.registry.add_relying_party("rp-hot", "both")[1]
    hdr = {"Authorization": f"Bearer {credential}"}
    path = get_path(request_der(items[0]))
    assert call(app, "GET", path, headers=hdr).ocsp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL

    def no_parsing(*args, **kwargs):
        raise AssertionError("the hot path must not decode the request")

    monkeypatch.setattr(ocsp_http, "parse_request", no_parsing)
    monkeypatch.setattr(ort.store, "engine", None)  # nor touch the store
    for _ in range(5):
        resp = call(app, "GET", path, headers=hdr)
        assert resp.status == 200 and resp.ocsp.certificate_status == ocsp.OCSPCertStatus.GOOD
    monkeypatch.undo()
    # Without a credential the cached answer is not handed out: refused, as before.
    assert call(app, "GET", path).ocsp.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    counts = {key[1:]: n for key, n in app.counters.totals().items()}
    assert counts[("sign", "good", "rp-hot")] == 6
