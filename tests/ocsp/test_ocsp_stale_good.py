"""No stale "good" after a revocation, whatever the interleaving of a certificate's first lookups.

A certificate can be asked about through several encodings at once: the same CertID by GET and
by POST, and CertIDs hashed with SHA-1 and SHA-256 (RFC 6960 section 4.1.1, RFC 5019 section
2.1.1).  When those first lookups run concurrently they all miss the pre-signed cache, all sign
and all store; every raw request they were linked to must be dropped by the revocation, or one of
them keeps answering "good" until the entry's refresh (ocsp.refresh_seconds).
"""

from __future__ import annotations

import threading

import pytest
from asn1crypto import ocsp as a_ocsp

from jpki_mock.ocsp import response as ocsp_response
from jpki_mock.runtime import Runtime
from tests.support.ocsp import call, get_path, issue, ocsp_app, request_der

ENCODINGS = [("GET", "sha1"), ("POST", "sha1"), ("GET", "sha256"), ("POST", "sha256")]


def _ask(app, method: str, der_bytes: bytes):
    if method == "GET":
        return call(app, "GET", get_path(der_bytes))
    return call(app, "POST", "/", der_bytes)


def _cert_status(resp) -> str:
    """The certStatus of the single answer, as asn1crypto reads the DER ("good", "revoked", "unknown")."""
    assert resp.status == 200, resp.status_line
    parsed = a_ocsp.OCSPResponse.load(resp.body)
    assert parsed["response_status"].native == "successful"
    responses = parsed["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
    assert len(responses) == 1
    return responses[0]["cert_status"].name


def _all_sign_together(monkeypatch, parties: int) -> threading.Barrier:
    """Make every signature wait until ``parties`` requests are signing: each of them has
    looked the pre-signed cache up and missed (an entry is stored only after its signature)."""
    barrier = threading.Barrier(parties, timeout=30)
    real = ocsp_response.sign_response

    def sign_response(signer, head, extensions=b""):
        barrier.wait()
        return real(signer, head, extensions)

    monkeypatch.setattr(ocsp_response, "sign_response", sign_response)
    return barrier


def test_concurrent_first_lookups_are_all_invalidated(make_app, ort, items, monkeypatch):
    """The regression: GET and POST for one CertID (and the SHA-256 CertID) both miss, both
    sign, both store; after the revoke returned every one of them answers revoked."""
    app = make_app(live_sign_concurrency=len(ENCODINGS))
    item = items[1]
    requests = [(method, request_der(item, alg)) for method, alg in ENCODINGS]
    _all_sign_together(monkeypatch, len(requests))
    results: list = [None] * len(requests)

    def first_lookup(i: int) -> None:
        results[i] = _ask(app, *requests[i])

    threads = [threading.Thread(target=first_lookup, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [_cert_status(r) for r in results] == ["good"] * len(requests)
    monkeypatch.undo()
    # Served from the cache now: the same bytes come back without signing again.
    assert [_ask(app, *req).body for req in requests] == [r.body for r in results]

    ort.authority.revoke("auth", item.serial, "keyCompromise")
    assert [_cert_status(_ask(app, *req)) for req in requests] == ["revoked"] * len(requests)


def test_replaced_entry_unlinks_its_requests(make_app, ort, items, monkeypatch):
    """Two first lookups of the same request bytes by GET and by POST, in that order of storing:
    the later entry replaces the earlier one for the CertID, and the earlier one's request must
    go with it (or a revocation would never reach it)."""
    app = make_app(live_sign_concurrency=2)
    item = items[0]
    der_bytes = request_der(item, "sha1")
    _all_sign_together(monkeypatch, 2)
    out = {}
    threads = [threading.Thread(target=lambda m=m: out.__setitem__(m, _ask(app, m, der_bytes)))
               for m in ("GET", "POST")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    assert _cert_status(out["GET"]) == _cert_status(out["POST"]) == "good"
    ort.authority.revoke("sign", item.serial, "affiliationChanged")
    assert _cert_status(_ask(app, "GET", der_bytes)) == "revoked"
    assert _cert_status(_ask(app, "POST", der_bytes)) == "revoked"


# ---------------------------------------------------------------------------------------------- stress


def _stress(rt: Runtime, holders: int, threads: int, budget: int | None = None) -> None:
    """``holders`` holders (two certificates each), every certificate's first lookups through
    every encoding released together on ``threads`` worker threads; revoke them all; count the
    "good" answers after that.  ``budget``: the pre-signed cache's bytes (evicting meanwhile)."""
    items = issue(rt, "both", holders)
    app = ocsp_app(rt)
    if budget is not None:
        app.chain.presigned.budget = budget
        app.chain.presigned.max_statuses = 16
    requests = [[(method, request_der(item, alg)) for method, alg in ENCODINGS] for item in items]
    per_round = threads // len(ENCODINGS)  # certificates asked about together in one round
    rounds = [requests[i:i + per_round] for i in range(0, len(requests), per_round)]
    barrier = threading.Barrier(threads, timeout=60)
    answers: list[list] = [[] for _ in range(threads)]
    errors: list = []

    def worker(w: int) -> None:
        cert, enc = divmod(w, len(ENCODINGS))
        try:
            for group in rounds:
                barrier.wait()  # every encoding of this round's certificates at once
                if cert < len(group):
                    answers[w].append(_cert_status(_ask(app, *group[cert][enc])))
        except Exception as exc:
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors[:3]
    assert sum(len(a) for a in answers) == len(items) * len(ENCODINGS)
    assert {s for a in answers for s in a} == {"good"}
    assert app.chain.stats()["presigned"] > 0
    if budget is not None:
        assert app.chain.presigned.evictions > 0 and app.chain.presigned.used <= budget

    for item in items:
        rt.authority.revoke(item.kind, item.serial, "keyCompromise")
    stale = [(item.kind, item.serial, method) for item, reqs in zip(items, requests, strict=True)
             for method, der_bytes in reqs if _cert_status(_ask(app, method, der_bytes)) != "revoked"]
    assert stale == [], f"{len(stale)} answers not revoked after every revoke returned: {stale[:5]}"


def test_no_stale_good_under_concurrent_first_lookups(db_rt):
    """Hundreds of certificates on SQLite and PostgreSQL: 0 stale "good"."""
    _stress(db_rt, holders=150, threads=8)


def test_no_stale_good_while_the_cache_evicts(rt):
    """The same with room for about 40 answers out of 240 (four encodings of 60 certificates):
    entries replaced, dropped and evicted at once, statuses forgotten and read again; still 0
    stale "good"."""
    _stress(rt, holders=30, threads=8, budget=40 * 2300)


# ---------------------------------------------------------------------------------------------- sync cap


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_more_changes_than_one_sync_reads(make_app, ort, monkeypatch, cap):
    """More revocations between two requests than one sync reads (``cap``): none is missed."""
    app = make_app()
    app.chain.presigned.sync_batch = cap
    items = issue(ort, "both", 3)
    requests = [(method, request_der(item, alg)) for item in items for method, alg in ENCODINGS]
    assert {_cert_status(_ask(app, *req)) for req in requests} == {"good"}
    for item in items:
        ort.authority.revoke(item.kind, item.serial, "cessationOfOperation")
    assert [_cert_status(_ask(app, *req)) for req in requests] == ["revoked"] * len(requests)
