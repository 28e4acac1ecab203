"""The request corpus: pre-encoded OCSP requests with the answer each one must get.

Built once from a seeded database, read-only (through :class:`ca.status.StatusReader` and a
few ``SELECT``s on the certificate table), and written to a JSON file.  The load generator
then only picks an item, optionally splices a fresh nonce into bytes at a known offset, and
base64-encodes for GET: no ASN.1 work per request.

What goes in (per certificate kind):

- ``good``: valid, unrevoked certificates of every CA generation;
- ``revoked``: revoked certificates, spread over every revocation reason present
  (affiliationChanged, superseded, cessationOfOperation, keyCompromise, ...);
- ``hold``: certificates on hold (lost cards; JPKI never releases a hold);
- ``never_issued``: serials beyond anything the CA issued: ``unknown``, or ``revoked`` with
  certificateHold when ``ocsp.unknown_serial = "revoked"`` (RFC 6960 section 4.4.8);
- ``foreign_issuer``: CertIDs naming another CA, one with JPKI's own DN but another key
  (a responder matching by name alone would answer it) and one with another DN: the
  response status must be ``unauthorized`` (RFC 5019 section 2.2.3).

At national scale (``--population N``, docs/loadtest.md "National scale") the corpus also
carries a compact sample of N records drawn uniformly from the whole seeded population, in
random order, with the answer each must get.  :class:`Lookups` walks it so that most lookups
name a certificate not asked about before (J-LIS: 71.6 M user-authentication lookups in FY2020
over ~42 M cards, about 1.7 a certificate a year: docs/sources.md section 1), and repeats a
recent one with a configurable share (a relying party re-checking a session).  Its items are
encoded when first picked.

Every item carries both a SHA-1 and a SHA-256 CertID form (RFC 6960 / RFC 9919), with and
without a nonce extension (RFC 9654).  Expired certificates are left out: whether a responder
still answers for them is a policy question, not a load-test one.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jpki_mock.ca.status import HOLD, REASON_NAMES

FORMAT = "jpki-mock-loadtest-corpus/1"
ALGORITHMS = ("sha1", "sha256")
CATEGORIES = ("good", "revoked", "hold", "never_issued", "foreign_issuer")
NONCE_LEN = 16
#: a certificate must stay valid this long after the corpus is built to be included.
VALIDITY_MARGIN = timedelta(days=2)
#: serials above the largest issued one by at least this much are "never issued" (the run's
#: own operator issues from the same counter, far below this).
NEVER_ISSUED_GAP = 10**12


@dataclass(frozen=True)
class Expect:
    """The answer a correct responder gives (RFC 6960 section 4.2.1 / 4.2.2.1)."""

    response: str  # OCSP responseStatus: successful | unauthorized
    status: str | None = None  # certStatus: good | revoked | unknown
    reason: str | None = None  # CRLReason name when revoked
    revoked_at: float | None = None  # POSIX seconds

    def as_dict(self) -> dict[str, Any]:
        return {"response": self.response, "status": self.status, "reason": self.reason, "revoked_at": self.revoked_at}


@dataclass
class Item:
    kind: str
    category: str
    issuer: str | None  # label, e.g. auth-g1; None for a foreign issuer
    serial: int
    municipality: str | None
    expect: Expect
    #: alg -> plain request DER; alg -> request DER carrying a NONCE_LEN-byte nonce at nonce_at[alg].
    der: dict[str, bytes]
    der_nonce: dict[str, bytes]
    nonce_at: dict[str, int]
    get_path: dict[str, str] = field(default_factory=dict)

    def request(self, alg: str, nonce: bytes | None = None) -> bytes:
        if nonce is None:
            return self.der[alg]
        template, at = self.der_nonce[alg], self.nonce_at[alg]
        return template[:at] + nonce + template[at + NONCE_LEN:]

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "category": self.category, "issuer": self.issuer, "serial": self.serial,
            "municipality": self.municipality, "expect": self.expect.as_dict(),
            "der": {a: base64.b64encode(d).decode() for a, d in self.der.items()},
            "der_nonce": {a: base64.b64encode(d).decode() for a, d in self.der_nonce.items()},
            "nonce_at": self.nonce_at,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Item:
        return cls(
            kind=d["kind"], category=d["category"], issuer=d["issuer"], serial=int(d["serial"]),
            municipality=d.get("municipality"), expect=Expect(**d["expect"]),
            der={a: base64.b64decode(v) for a, v in d["der"].items()},
            der_nonce={a: base64.b64decode(v) for a, v in d["der_nonce"].items()},
            nonce_at={a: int(v) for a, v in d["nonce_at"].items()},
        )


def get_suffix(der: bytes) -> str:
    """RFC 6960 appendix A.1: the URL-encoding of the base64 of the DER request."""
    return quote(base64.b64encode(der).decode(), safe="")


# ------------------------------------------------------------------ building
def _encode(name_hash: bytes, key_hash: bytes, serial: int, alg: str, marker: bytes) -> tuple[bytes, bytes, int]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    algorithm = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}[alg]
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, algorithm)
    plain = builder.build().public_bytes(serialization.Encoding.DER)
    nonced = builder.add_extension(x509.OCSPNonce(marker), critical=False).build().public_bytes(
        serialization.Encoding.DER)
    at = nonced.find(marker)
    assert at > 0 and nonced.find(marker, at + 1) < 0, "nonce marker must occur exactly once"
    return plain, nonced, at


def make_item(kind: str, category: str, issuer: str | None, serial: int, municipality: str | None, expect: Expect,
              name_hash: dict[str, bytes], key_hash: dict[str, bytes], marker: bytes) -> Item:
    der, der_nonce, at = {}, {}, {}
    for alg in ALGORITHMS:
        der[alg], der_nonce[alg], at[alg] = _encode(name_hash[alg], key_hash[alg], serial, alg, marker)
    return Item(kind, category, issuer, serial, municipality, expect, der, der_nonce, at)


def _posix(dt: datetime | None) -> float | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        from jpki_mock.clock import UTC

        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp(), 3)


def expect_for(status) -> tuple[str, Expect]:
    """Category and expected answer for a stored :class:`ca.status.CertStatus`."""
    if status.status == "good":
        return "good", Expect("successful", "good")
    category = "hold" if status.reason == HOLD else "revoked"
    return category, Expect("successful", "revoked", REASON_NAMES.get(status.reason), _posix(status.revoked_at))


def _serial_range(store, ca_id: int) -> tuple[int, int] | None:
    from sqlalchemy import func, select

    from jpki_mock.ca.models import Certificate

    with store.engine.connect() as conn:
        lo, hi = conn.execute(select(func.min(Certificate.serial), func.max(Certificate.serial))
                              .where(Certificate.ca_id == ca_id)).one()
    return None if lo is None else (int(lo), int(hi))


def _candidate_batches(lo: int, hi: int, rng: random.Random, batch: int = 1000,
                       tries: int = 200) -> Iterator[list[int]]:
    """Serials to look up: all of them, shuffled, for a small range; random draws for a large one."""
    span = hi - lo + 1
    if span <= 50 * batch:
        serials = list(range(lo, hi + 1))
        rng.shuffle(serials)
        for i in range(0, span, batch):
            yield serials[i:i + batch]
        return
    for _ in range(tries):
        yield [rng.randint(lo, hi) for _ in range(batch)]


@dataclass
class Quota:
    good: int
    revoked: int
    hold: int

    def full(self, got: dict[str, int]) -> bool:
        return got["good"] >= self.good and got["revoked"] >= self.revoked and got["hold"] >= self.hold


def sample_statuses(reader, ca_id: int, quota: Quota, now: datetime, rng: random.Random) -> list:
    """Up to ``quota`` unexpired certificate statuses of one CA generation, through
    :meth:`StatusReader.lookup_many` (one indexed read per batch).  Revoked ones are taken
    round-robin over reasons so that rare reasons (keyCompromise) are represented."""
    rng_range = _serial_range(reader.store, ca_id)
    if rng_range is None:
        return []
    picked: list = []
    got = {"good": 0, "revoked": 0, "hold": 0}
    by_reason: dict[int, list] = {}
    seen: set[int] = set()
    cutoff = now + VALIDITY_MARGIN
    for batch in _candidate_batches(*rng_range, rng):
        for serial, st in reader.lookup_many(ca_id, [s for s in batch if s not in seen]).items():
            seen.add(serial)
            na = st.not_after if st.not_after.tzinfo else st.not_after.replace(tzinfo=now.tzinfo)
            if na <= cutoff:
                continue
            category, _ = expect_for(st)
            if category == "good":
                if got["good"] < quota.good:
                    picked.append(st)
                    got["good"] += 1
            elif category == "hold":
                if got["hold"] < quota.hold:
                    picked.append(st)
                    got["hold"] += 1
            else:
                by_reason.setdefault(st.reason, []).append(st)
                got["revoked"] = sum(min(len(v), quota.revoked) for v in by_reason.values())
        if quota.full(got) and len(by_reason) >= 4:
            break
    # Round-robin over reasons up to the revoked quota.
    queues = [list(v) for _, v in sorted(by_reason.items())]
    taken = 0
    while taken < quota.revoked and any(queues):
        for q in queues:
            if q and taken < quota.revoked:
                picked.append(q.pop())
                taken += 1
    return picked


def sample_population(reader, ca_id: int, count: int, now: datetime, rng: random.Random) -> list:
    """Up to ``count`` distinct unexpired records of one CA generation drawn uniformly over its
    whole serial range (so statuses come in the population's own mix), in random order."""
    rng_range = _serial_range(reader.store, ca_id)
    if rng_range is None or count <= 0:
        return []
    lo, hi = rng_range
    cutoff = now + VALIDITY_MARGIN
    picked: list = []
    seen: set[int] = set()
    draws = rng.sample(range(lo, hi + 1), min(hi - lo + 1, count + count // 5 + 100))
    for at in range(0, len(draws), 5000):
        for st in reader.lookup_many(ca_id, draws[at:at + 5000]).values():
            na = st.not_after if st.not_after.tzinfo else st.not_after.replace(tzinfo=now.tzinfo)
            if na > cutoff and st.serial not in seen:
                seen.add(st.serial)
                picked.append(st)
        if len(picked) >= count:
            break
    rng.shuffle(picked)
    return picked[:count]


def _population(reader, issuers: list, count: int, now: datetime, rng: random.Random) -> dict[str, list[list[Any]]]:
    """``count`` records over every live CA generation of both kinds, shared in proportion to
    their serial ranges: [issuer label, serial, municipality, category, expect as a dict]."""
    live = [i for i in issuers if i.revoked_at is None]
    spans = {}
    for i in live:
        bounds = _serial_range(reader.store, i.id)
        spans[i.id] = 0 if bounds is None else bounds[1] - bounds[0] + 1
    total = sum(spans.values()) or 1
    out: dict[str, list[list[Any]]] = {"auth": [], "sign": []}
    for issuer in live:
        share = round(count * spans[issuer.id] / total)
        for st in sample_population(reader, issuer.id, share, now, rng):
            category, expect = expect_for(st)
            out[issuer.kind].append([issuer.label, st.serial, st.municipality, category, expect.as_dict()])
    for kind in out:
        rng.shuffle(out[kind])
    return out


def build(rt, certificates: int = 1000, *, seed: int | None = None, progress: bool = True,
          population: int = 0) -> dict[str, Any]:
    """The corpus as a JSON-ready dict, from the runtime's database (read-only).

    ``certificates`` seeded certificates are sampled (split evenly over the two kinds; about
    80 % good, 15 % revoked, 5 % held, as available), plus synthetic never-issued and
    foreign-issuer items (2 % each, at least 5 per kind); and ``population`` records sampled
    uniformly from the whole seeded population for national-scale runs (:class:`Lookups`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from tqdm import tqdm

    from jpki_mock import urls

    if certificates < 2:
        from jpki_mock.errors import InvalidInput

        raise InvalidInput(f"{certificates} is too few", field="certificates", allowed="at least 2")
    rng = random.Random(seed)
    reader = rt.status
    now = rt.clock.now()
    marker = os.urandom(NONCE_LEN)
    issuers = reader.issuers()
    if not issuers:
        from jpki_mock.errors import NotInitialised

        raise NotInitialised("the database has no CA: run `jpki-mock init` and `jpki-mock seed` first")
    unknown_policy = rt.config.ocsp.unknown_serial
    items: list[Item] = []
    # Three RSA keys, made here once rather than in the load generator (a key generation blocks a
    # gevent process for a while): a foreign CA's, and the card keys the operator sends (card
    # keys are generated on the card; the office only ever handles public keys).
    foreign_key, *card_keys = (rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
                               for _ in range(3))
    operator_keys = {kind: key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
                     for kind, key in zip(("sign", "auth"), card_keys, strict=True)}
    bar = tqdm(total=certificates, unit="cert", desc="corpus", disable=not progress)
    for kind in ("auth", "sign"):
        gens = [i for i in issuers if i.kind == kind and i.revoked_at is None]
        per_kind = certificates // 2
        per_gen = max(1, per_kind // max(1, len(gens)))
        quota = Quota(good=per_gen - per_gen * 20 // 100, revoked=per_gen * 15 // 100, hold=per_gen * 5 // 100)
        top = 0
        for issuer in gens:
            for st in sample_statuses(reader, issuer.id, quota, now, rng):
                category, expect = expect_for(st)
                items.append(make_item(kind, category, issuer.label, st.serial, st.municipality, expect,
                                       issuer.name_hash, issuer.key_hash, marker))
                bar.update(1)
            top = max(top, (_serial_range(reader.store, issuer.id) or (0, 0))[1])
        extra = max(5, per_kind * 2 // 100)
        current = gens[-1] if gens else [i for i in issuers if i.kind == kind][-1]
        never = (Expect("successful", "unknown") if unknown_policy == "unknown"
                 else Expect("successful", "revoked", REASON_NAMES[HOLD], 0.0))
        for _ in range(extra):
            serial = top + NEVER_ISSUED_GAP + rng.randrange(10**9)
            items.append(make_item(kind, "never_issued", current.label, serial, None, never,
                                   current.name_hash, current.key_hash, marker))
        # A foreign CA: JPKI's DN with another key, and another DN altogether.
        bits = foreign_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        other_name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Another CA")]).public_bytes()
        for n in range(extra):
            name_der = current.name_der if n % 2 == 0 else other_name
            nh = {a: _digest(a, name_der) for a in ALGORITHMS}
            kh = {a: _digest(a, bits) for a in ALGORITHMS}
            items.append(make_item(kind, "foreign_issuer", None, rng.randint(1, 10**9), None,
                                   Expect("unauthorized"), nh, kh, marker))
    bar.close()
    crls = []
    for issuer in issuers:
        crls.append({"issuer": issuer.label, "kind": issuer.kind, "generation": issuer.generation,
                     "partition": "full", "path": urls.crl_path(issuer.kind, issuer.generation)})
        for muni in reader.municipalities_of(issuer.id):
            crls.append({"issuer": issuer.label, "kind": issuer.kind, "generation": issuer.generation,
                         "partition": muni, "path": urls.crl_path(issuer.kind, issuer.generation, muni)})
    return {
        "format": FORMAT,
        "built_at": _posix(now),
        "policies": {"unknown_serial": unknown_policy, "nonce_policy": rt.config.ocsp.nonce_policy},
        "issuers": [{"label": i.label, "kind": i.kind, "generation": i.generation,
                     "der": base64.b64encode(i.der).decode(),
                     "name_hash": {a: i.name_hash[a].hex() for a in ALGORITHMS},
                     "key_hash": {a: i.key_hash[a].hex() for a in ALGORITHMS}} for i in issuers],
        "crls": crls,
        "mix": dict(_mix()),
        "operator_keys": operator_keys,
        "counts": _counts(items),
        "items": [i.as_json() for i in items],
        "population": _population(reader, issuers, population, now, rng) if population else {},
        "marker": base64.b64encode(marker).decode(),
    }


def _digest(alg: str, data: bytes) -> bytes:
    import hashlib

    return hashlib.new(alg, data).digest()


def _mix() -> dict[str, float]:
    from jpki_mock.loadtest import sizing

    return dict(sizing.OCSP_MIX)


def _counts(items: list[Item]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for it in items:
        key = it.category if it.category != "revoked" else f"revoked:{it.expect.reason}"
        out.setdefault(it.kind, {}).setdefault(key, 0)
        out[it.kind][key] += 1
    return out


def write(data: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------ loading (load generator side)
class Corpus:
    """A loaded corpus, ready to hand out requests by kind and category."""

    def __init__(self, data: dict[str, Any]):
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file (format {data.get('format')!r})")
        self.data = data
        #: seconds :meth:`load` took to read and index the file (0 when built from a dict)
        self.load_seconds = 0.0
        self.built_at: float = data["built_at"]
        self.policies: dict[str, str] = data["policies"]
        self.items = [Item.from_json(d) for d in data["items"]]
        for it in self.items:
            it.get_path = {a: get_suffix(d) for a, d in it.der.items()}
        self.by: dict[tuple[str, str], list[Item]] = {}
        for it in self.items:
            self.by.setdefault((it.kind, it.category), []).append(it)
        self.mix = {c: w for c, w in data["mix"].items() if w > 0}
        self.crls: list[dict[str, Any]] = data["crls"]
        self.operator_keys: dict[str, str] = data["operator_keys"]
        self.issuers: dict[str, dict[str, Any]] = {}
        for stored in data["issuers"]:
            i = dict(stored)
            i["der"] = base64.b64decode(i["der"])
            i["name_hash"] = {a: bytes.fromhex(v) for a, v in i["name_hash"].items()}
            i["key_hash"] = {a: bytes.fromhex(v) for a, v in i["key_hash"].items()}
            self.issuers[i["label"]] = i
        #: kind -> [issuer label, serial, municipality, category, expect] sampled from the whole population
        self.population: dict[str, list[list[Any]]] = data.get("population") or {}
        self._marker = base64.b64decode(data["marker"]) if "marker" in data else os.urandom(NONCE_LEN)
        self._weights: dict[str, tuple[list[str], list[float]]] = {}
        for kind in ("auth", "sign"):
            cats = [c for c in self.mix if self.by.get((kind, c))]
            self._weights[kind] = (cats, [self.mix[c] for c in cats])

    @classmethod
    def load(cls, path: str | Path) -> Corpus:
        started = time.perf_counter()
        corpus = cls(json.loads(Path(path).read_text(encoding="utf-8")))
        corpus.load_seconds = time.perf_counter() - started
        return corpus

    def pick(self, kind: str, rng: random.Random) -> Item:
        cats, weights = self._weights[kind]
        if not cats:
            raise LookupError(f"the corpus has no {kind} items")
        category = rng.choices(cats, weights)[0]
        return rng.choice(self.by[(kind, category)])

    def population_item(self, kind: str, index: int) -> Item:
        """The ``index``-th population record of ``kind`` as an :class:`Item` (encoded now)."""
        label, serial, municipality, category, expect = self.population[kind][index]
        issuer = self.issuers[label]
        item = make_item(kind, category, label, serial, municipality, Expect(**expect), issuer["name_hash"],
                         issuer["key_hash"], self._marker)
        item.get_path = {a: get_suffix(d) for a, d in item.der.items()}
        return item

    def revoked_items(self, label: str, municipality: str | None = None) -> list[Item]:
        return [it for it in self.items if it.issuer == label and it.category in ("revoked", "hold")
                and (municipality is None or it.municipality == municipality)]

    def good_items(self, label: str, municipality: str | None = None) -> list[Item]:
        return [it for it in self.items if it.issuer == label and it.category == "good"
                and (municipality is None or it.municipality == municipality)]


class Lookups:
    """Which certificate a relying party asks about next, at national scale.

    With a population sample in the corpus: a share ``repeat_share`` of lookups repeats one of
    the last ``window`` asked by this process (a relying party re-checking a session); the rest
    take the next record of the sample not asked yet, so each is a first lookup, as at J-LIS where
    a certificate is asked about ~1.7 times a year (docs/loadtest.md "National scale").  The
    synthetic categories (never issued, foreign issuer) keep their share of the mix
    (``sizing.OCSP_MIX``) from the fixed corpus.  The walk begins at ``start`` (a fraction of the
    sample), so users starting at random points rarely ask the same record; it wraps at the end
    (counted: from then on "first" lookups repeat).  Without a population sample it is
    :meth:`Corpus.pick`."""

    SYNTHETIC = ("never_issued", "foreign_issuer")

    def __init__(self, corpus: Corpus, repeat_share: float, *, window: int = 1000, start: float = 0.0):
        self.corpus, self.repeat_share = corpus, repeat_share
        self.cursor = {k: int(start * len(corpus.population.get(k, ()))) for k in ("auth", "sign")}
        self.walked = dict.fromkeys(("auth", "sign"), 0)
        self.recent: dict[str, deque[Item]] = {k: deque(maxlen=window) for k in ("auth", "sign")}
        #: first lookups, repeats, and times the sample was walked through (then first lookups repeat)
        self.counts = {"first": 0, "repeat": 0, "wrapped": 0}
        self.synthetic_share = sum(corpus.mix.get(c, 0.0) for c in self.SYNTHETIC) / (sum(corpus.mix.values()) or 1)

    def next(self, kind: str, rng: random.Random) -> Item:
        population = self.corpus.population.get(kind)
        if not population:
            return self.corpus.pick(kind, rng)
        synthetic = [c for c in self.SYNTHETIC if self.corpus.by.get((kind, c))]
        if synthetic and rng.random() < self.synthetic_share:
            return rng.choice(self.corpus.by[(kind, rng.choice(synthetic))])
        recent = self.recent[kind]
        if recent and rng.random() < self.repeat_share:
            self.counts["repeat"] += 1
            return rng.choice(recent)
        at = self.cursor[kind] % len(population)
        self.cursor[kind] = at + 1
        self.walked[kind] += 1
        if self.walked[kind] > len(population) and self.walked[kind] % len(population) == 1:
            self.counts["wrapped"] += 1
        item = self.corpus.population_item(kind, at)
        recent.append(item)
        self.counts["first"] += 1
        return item
