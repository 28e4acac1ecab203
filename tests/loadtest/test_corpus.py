"""The corpus is built read-only from a seeded store; every request parses and names what it claims."""

import hashlib
import json

import pytest
from asn1crypto import ocsp as asn1_ocsp

from jpki_mock.errors import InvalidInput
from jpki_mock.loadtest import corpus


@pytest.fixture(scope="module")
def data(seeded):
    return corpus.build(seeded, 200, seed=3, progress=False)


def test_mix_has_every_category_for_both_kinds(data):
    for kind in ("auth", "sign"):
        counts = data["counts"][kind]
        assert counts["good"] > 0
        assert any(k.startswith("revoked:") for k in counts)
        assert counts["never_issued"] >= 5 and counts["foreign_issuer"] >= 5
        assert counts["hold"] >= 1 and counts["revoked:keyCompromise"] >= 1
    assert {"full"} < {c["partition"] for c in data["crls"]}


def test_expected_status_is_the_stores(seeded, data):
    labels = {i.label: i for i in seeded.status.issuers()}
    c = corpus.Corpus(json.loads(json.dumps(data)))
    for item in c.items:
        if item.category in ("good", "revoked", "hold"):
            st = seeded.status.lookup(labels[item.issuer].id, item.serial)
            assert st is not None and st.status == item.expect.status
            if st.status == "revoked":
                assert item.expect.reason == st.reason_name
            assert st.not_after > seeded.clock.now()  # expired certificates are left out
        elif item.category == "never_issued":
            assert seeded.status.lookup(labels[item.issuer].id, item.serial) is None
            assert item.expect.status == "unknown"
        else:
            assert item.expect.response == "unauthorized"


def test_requests_parse_with_an_independent_decoder_and_name_the_issuer(seeded, data):
    labels = {i.label: i for i in seeded.status.issuers()}
    key_hashes = {i.key_hash["sha1"] for i in labels.values()}
    c = corpus.Corpus(data)
    for item in c.items:
        for alg in corpus.ALGORITHMS:
            req = asn1_ocsp.OCSPRequest.load(item.der[alg])
            [one] = req["tbs_request"]["request_list"]
            cert_id = one["req_cert"]
            assert cert_id["hash_algorithm"]["algorithm"].native == alg
            assert cert_id["serial_number"].native == item.serial
            if item.issuer is not None:
                issuer = labels[item.issuer]
                assert cert_id["issuer_name_hash"].native == issuer.name_hash[alg]
                assert cert_id["issuer_key_hash"].native == issuer.key_hash[alg]
            else:
                assert hashlib.new("sha1").digest_size and cert_id["issuer_key_hash"].native not in key_hashes


def test_nonce_is_spliced_into_a_valid_request(data):
    c = corpus.Corpus(data)
    item = c.items[0]
    nonce = bytes(range(16))
    for alg in corpus.ALGORITHMS:
        req = asn1_ocsp.OCSPRequest.load(item.request(alg, nonce))
        assert req["tbs_request"]["request_extensions"][0]["extn_id"].native == "nonce"
        assert req["tbs_request"]["request_extensions"][0]["extn_value"].parsed.native == nonce
        assert req["tbs_request"]["request_list"][0]["req_cert"]["serial_number"].native == item.serial


def test_policy_revoked_for_never_issued(seeded):
    config = seeded.config
    seeded.config = config.replace(ocsp=config.ocsp.__class__(unknown_serial="revoked"))
    try:
        data = corpus.build(seeded, 20, seed=1, progress=False)
    finally:
        seeded.config = config
    never = [i for i in data["items"] if i["category"] == "never_issued"]
    assert never
    assert all(i["expect"]["status"] == "revoked" and i["expect"]["reason"] == "certificateHold" for i in never)


def test_pick_follows_the_mix(data):
    import random

    c = corpus.Corpus(data)
    rng = random.Random(1)
    picks = [c.pick("auth", rng).category for _ in range(4000)]
    assert picks.count("good") / len(picks) > 0.9
    assert {"never_issued", "foreign_issuer"} <= set(picks)


def test_bad_input(rt, tmp_path):
    with pytest.raises(InvalidInput, match="too few"):
        corpus.build(rt, 1, progress=False)
    with pytest.raises(ValueError, match="not a jpki-mock-loadtest-corpus"):
        corpus.Corpus({"format": "something else"})
