"""National-scale lookups: the corpus samples the whole (lazily seeded) population, and
:class:`corpus.Lookups` makes most lookups first ones, with a configurable share of repeats."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime

import pytest
from asn1crypto import ocsp as asn1_ocsp

from jpki_mock.ca.bulkseed import seed_records
from jpki_mock.clock import UTC, FixedClock
from jpki_mock.errors import InvalidInput
from jpki_mock.loadtest import corpus
from jpki_mock.loadtest.profiles import PlanSpec
from tests.support import open_runtime

HOLDERS = 3000


@pytest.fixture(scope="module")
def national(tmp_path_factory):
    rt = open_runtime(tmp_path_factory.mktemp("national") / "data", FixedClock(datetime.now(UTC)))
    seed_records(rt, HOLDERS, rng_seed=11, key_pool=2, progress=False, workers=0)
    data = json.loads(json.dumps(corpus.build(rt, 40, seed=5, progress=False, population=2000)))
    yield rt, data
    rt.close()


def test_the_population_sample_spans_the_whole_range_in_the_populations_mix(national):
    rt, data = national
    labels = {i.label: i for i in rt.status.issuers()}
    records = data["population"]["auth"] + data["population"]["sign"]
    assert 1900 <= len(records) <= 2000
    assert len({(r[0], r[1]) for r in records}) == len(records)  # distinct
    for kind in ("auth", "sign"):
        serials = sorted(r[1] for r in data["population"][kind])
        low, high = corpus._serial_range(rt.store, labels[f"{kind}-g1"].id)
        # Uniform over the whole range, not the first few thousand serials.
        assert serials[0] - low < (high - low) * 0.05 and high - serials[-1] < (high - low) * 0.05
    for label, serial, _muni, category, expect in records:
        st = rt.status.lookup(labels[label].id, serial)
        assert st is not None and st.status == expect["status"]
        assert category == ("good" if st.status == "good" else ("hold" if st.reason == 6 else "revoked"))
    shares = Counter(r[3] for r in records)
    # The seeded mix (ca/seed.py MIX): mostly good, a few percent revoked.
    assert 0.8 < shares["good"] / len(records) < 0.99 and shares["revoked"] > 0


def test_lookups_are_first_ones_but_for_the_repeat_share(national):
    _rt, data = national
    c = corpus.Corpus(data)
    rng = random.Random(1)
    lookups = corpus.Lookups(c, 0.1, start=0.5)
    picked = [lookups.next("auth", rng) for _ in range(800)]
    population = [p for p in picked if p.category in ("good", "revoked", "hold")]
    repeats = len(population) - len({p.serial for p in population})
    assert lookups.counts["repeat"] == repeats
    assert 0.06 < repeats / len(population) < 0.14
    assert lookups.counts["wrapped"] == 0
    synthetic = [p for p in picked if p.category in ("never_issued", "foreign_issuer")]
    assert len(synthetic) < 30  # about 1 % (sizing.OCSP_MIX)
    # Each request names the record it claims, parsed by an independent decoder.
    for item in population[:50]:
        req = asn1_ocsp.OCSPRequest.load(item.request("sha1"))
        cid = req["tbs_request"]["request_list"][0]["req_cert"]
        assert cid["serial_number"].native == item.serial
        assert cid["issuer_key_hash"].native == c.issuers[item.issuer]["key_hash"]["sha1"]


def test_without_repeats_nothing_repeats_until_the_sample_is_walked_through(national):
    _rt, data = national
    c = corpus.Corpus(data)
    rng = random.Random(2)
    lookups = corpus.Lookups(c, 0.0)
    size = len(c.population["sign"])
    serials = [i.serial for i in (lookups.next("sign", rng) for _ in range(size + 50))
               if i.category not in ("never_issued", "foreign_issuer")]
    first_pass = serials[:size - 50]
    assert len(set(first_pass)) == len(first_pass)
    assert lookups.counts["wrapped"] == 1


def test_a_corpus_without_population_picks_as_before(national):
    _rt, data = national
    c = corpus.Corpus({**data, "population": {}})
    lookups = corpus.Lookups(c, 0.5)
    items = {lookups.next("auth", random.Random(3)).serial for _ in range(20)}
    assert items <= {i.serial for i in c.items}


def test_the_repeat_share_is_a_share(tmp_path):
    with pytest.raises(InvalidInput) as err:
        PlanSpec(profile="peak", duration=10, corpus="-", out=str(tmp_path), repeat_share=1.5)
    assert err.value.field == "repeat-share"
