"""Bulk seeding: N holders with real, signed certificates and a realistic revocation mix.

The fast path differs from :meth:`ca.issuance.Issuance.issue` in three ways only: subject keys come
from a small reused pool (allowed for seeding alone: the certificates are still real and
verify), signing runs in a process pool (RSA signing is the bottleneck; 2 cores here), and
rows go in with batched executemany inserts.  Everything else (profile, serials from the
shared counter, validity rules) is the same code.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from multiprocessing.pool import AsyncResult
from typing import Protocol, TypedDict, cast

from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Table, func, insert, select, text

from jpki_mock import audit, municipalities
from jpki_mock.ca import basic4 as b4
from jpki_mock.ca import fastcert, keys, profile
from jpki_mock.ca.authority import Authority
from jpki_mock.ca.issuance import MIN_SIGN_AGE
from jpki_mock.ca.models import Certificate, Holder, note_partitions
from jpki_mock.ca.serials import REVOCATION_SEQ_START, SERIAL_START, SERIALS
from jpki_mock.ca.signer import Keyring, SealedSigner
from jpki_mock.ca.status import REVOCATION_SEQ
from jpki_mock.clock import JST, Clock
from jpki_mock.db import Base, Store, next_values
from jpki_mock.epoch import RevocationEpoch
from jpki_mock.vocab import KINDS, CertState, HolderState, Kind, Reason

MAX_API_HOLDERS = 10_000
BATCH = 2_000

SURNAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田", "佐々木",
            "山口", "松本"]
GIVEN = ["太郎", "花子", "一郎", "陽子", "健", "美咲", "大輔", "結衣", "翔", "さくら", "蓮", "葵", "悠真", "陽菜"]

# The mix, per holder (documented in docs/profile.md "Seeding"): shares are assumptions sized
# from FY2020's ~4.6M renewals and resident-registry changes over ~42M cards.
MIX = [
    ("sign_affiliation_changed", 0.06),  # moved / married: signature certificate revoked, auth stays
    ("superseded", 0.02),                 # renewed: the old pair revoked
    ("cessation", 0.01),                  # card returned / no longer needed
    ("death", 0.003),
    ("key_compromise", 0.002),
    ("hold", 0.005),                      # lost card: both on hold
    ("expired", 0.03),                    # validity over, still in the store
]


@dataclass
class SeedResult:
    holders: int
    certificates: int
    revoked: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.certificates / self.seconds if self.seconds else 0.0

    def summary_line(self) -> str:
        return (f"holders={self.holders} certificates={self.certificates} seconds={self.seconds:.2f} "
                f"certs_per_s={self.rate:.1f}")

    def as_dict(self) -> dict[str, int | float]:
        return {"holders": self.holders, "certificates": self.certificates, "revoked": self.revoked,
                "seconds": round(self.seconds, 3), "certs_per_s": round(self.rate, 1)}


class SeedRuntime(Protocol):
    """What seeding uses of the runtime (``jpki_mock.runtime.Runtime``, which ``ca`` does not import)."""

    @property
    def clock(self) -> Clock: ...
    @property
    def store(self) -> Store: ...
    @property
    def keyring(self) -> Keyring: ...
    @property
    def authority(self) -> Authority: ...
    @property
    def epoch(self) -> RevocationEpoch | None: ...


#: the seven basic-four items of a signature certificate, in :class:`ca.basic4.Basic4`'s field order
Basic4Tuple = tuple[str, str, str, str, str, str, str]
#: one certificate to sign: (ca_id, kind, serial, cn, key index, notBefore, notAfter, municipality
#: code, basic four or None); plain values, so a batch pickles cheaply to the worker processes
Job = tuple[int, str, int, str, int, datetime, datetime, str, Basic4Tuple | None]


# ------------------------------------------------------------------ worker side
class _WorkerState(TypedDict, total=False):
    signers: dict[int, fastcert.FastSigner]
    #: (SubjectPublicKeyInfo DER, subjectPublicKey bits) per pooled key
    pool: list[tuple[bytes, bytes]]


_W: _WorkerState = {}


def _worker_init(sealed: list[SealedSigner], pool_der: list[bytes] | None, key_pool: int,
                 prof: profile.EEProfile) -> None:
    signers: dict[int, fastcert.FastSigner] = {}
    _W["signers"] = signers
    for one in sealed:
        signer = one.open()  # the CA key is decrypted by ca.signer, in this worker
        signers[signer.issuer.id] = fastcert.FastSigner(signer.sign, signer.issuer.info, prof)
    if pool_der is None:
        # Each worker generates its own share of the reused subject keys, so the ~0.1 s per
        # RSA key generation runs on every core at once instead of in the parent beforehand.
        pool_der = [keys.generate_rsa().public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) for _ in range(key_pool)]
    # (SubjectPublicKeyInfo DER, subjectPublicKey bits) per pooled key.
    _W["pool"] = [(d, bytes(asn1_keys.PublicKeyInfo.load(d)["public_key"].contents[1:])) for d in pool_der]


def _sign_jobs(jobs: list[Job]) -> list[bytes]:
    out = []
    for (ca_id, kind, serial, cn, key_idx, nb, na, muni_code, b4_tuple) in jobs:
        spki, bits = _W["pool"][key_idx % len(_W["pool"])]
        out.append(_W["signers"][ca_id].certificate(
            kind=kind, municipality=municipalities.get(muni_code), serial=serial, not_before=nb,
            not_after=na, cn=cn, spki_der=spki, key_bits=bits, basic4=b4.Basic4(*b4_tuple) if b4_tuple else None,
        ))
    return out


# ------------------------------------------------------------------ parent side
class _RandomHolder(TypedDict):
    name: str
    date_of_birth: str
    gender: str
    address: str
    name_flags: str
    address_flags: str
    municipality: str
    birth: date


def _random_holder(rng: random.Random, today: date) -> _RandomHolder:
    muni = municipalities.get(rng.choice(municipalities.SAMPLE))
    age_days = rng.randint(0, 95 * 365)
    birth = today - timedelta(days=age_days)
    surname, given = rng.choice(SURNAMES), rng.choice(GIVEN)
    name = f"{surname}\u3000{given}"
    address = f"{muni.address_prefix}{rng.randint(1, 9)}丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号"
    return {
        "name": name, "date_of_birth": b4.encode_dob(birth), "gender": rng.choice("112233"[:4] + "12"),
        "address": address, "name_flags": "0" * len(name), "address_flags": "0" * len(address),
        "municipality": muni.code, "birth": birth,
    }


def _pick_fate(rng: random.Random) -> str:
    r = rng.random()
    acc = 0.0
    for fate, share in MIX:
        acc += share
        if r < acc:
            return fate
    return "good"


class _Batches:
    """Prepares batches of holders + signing jobs, and stores signed batches, for :func:`seed_holders`."""

    def __init__(self, rt: SeedRuntime, rng: random.Random, key_pool: int):
        self.rt, self.rng, self.key_pool = rt, rng, key_pool
        self.now = rt.clock.now()
        self.today = self.now.astimezone(JST).date()
        self.issuers = {k: rt.authority.issuer(k) for k in KINDS}
        with rt.store.session() as s:
            self.next_holder = (s.scalar(select(func.max(Holder.id))) or 0) + 1

    def prepare(self, size: int) -> tuple[list[dict[str, object]], list[Job], list[tuple[int, str]]]:
        rng, now, today = self.rng, self.now, self.today
        holders: list[dict[str, object]] = []
        jobs: list[Job] = []
        fates: list[tuple[int, str]] = []
        with self.rt.store.session() as s:
            first = {k: next_values(s, SERIALS[k], size, start=SERIAL_START) for k in KINDS}
        used = dict.fromkeys(KINDS, 0)
        for _ in range(size):
            h = _random_holder(rng, today)
            hid = self.next_holder
            self.next_holder += 1
            fate = _pick_fate(rng)
            kinds = list(KINDS) if b4.age_on(h["birth"], today) >= MIN_SIGN_AGE else [Kind.AUTH]
            if fate == "expired":
                nb = now - timedelta(days=5 * 365 + rng.randint(1, 200))
                na = profile.jst_end_of_day((now - timedelta(days=rng.randint(1, 180))).date())
            else:
                nb = now - timedelta(seconds=rng.randint(0, 3 * 365 * 86400))
                na = profile.jst_end_of_day(b4.nth_birthday_after(h["birth"], nb.astimezone(JST).date(), 5))
                if na <= now:
                    na = profile.jst_end_of_day(b4.nth_birthday_after(h["birth"], today, 5))
            holders.append({
                "id": hid, "name": h["name"], "date_of_birth": h["date_of_birth"], "gender": h["gender"],
                "address": h["address"], "name_flags": h["name_flags"], "address_flags": h["address_flags"],
                "municipality": h["municipality"], "card_expiry": max(na.date(), today + timedelta(days=1)),
                "state": _HOLDER_STATE.get(fate, HolderState.ACTIVE),
                "created_at": nb, "updated_at": now,
            })
            muni = municipalities.get(h["municipality"])
            for kind in kinds:
                serial = first[kind] + used[kind]
                used[kind] += 1
                cn = profile.sign_cn(nb, serial, muni) if kind == Kind.SIGN else profile.auth_cn(rng)
                b4t: Basic4Tuple | None = (
                    h["name"], h["date_of_birth"], h["gender"], h["address"], h["name_flags"], h["address_flags"],
                    h["municipality"]) if kind == Kind.SIGN else None
                jobs.append((self.issuers[kind].id, kind, serial, cn, rng.randrange(self.key_pool), nb, na,
                             h["municipality"], b4t))
                fates.append((hid, fate))
        return holders, jobs, fates

    def store(self, holders: list[dict[str, object]], jobs: list[Job], fates: list[tuple[int, str]],
              ders: list[bytes]) -> int:
        rows: list[dict[str, object]] = []
        revoked = 0
        with self.rt.store.session() as s:
            for job, der, (hid, fate) in zip(jobs, ders, fates, strict=True):
                ca_id, kind, serial, cn, _k, nb, na, muni, _b = job
                reason = _reason_for(fate, kind)
                row: dict[str, object] = {
                    "ca_id": ca_id, "kind": kind, "serial": serial, "holder_id": hid, "municipality": muni,
                    "subject_cn": cn, "not_before": nb, "not_after": na, "status": CertState.GOOD, "revoked_at": None,
                    "reason": None, "status_seq": 0, "der": der, "issued_at": nb,
                }
                if reason is not None:
                    row.update(status=CertState.REVOKED, reason=reason,
                               revoked_at=min(self.now, nb + timedelta(seconds=self.rng.randint(3600, 400 * 86400))))
                    revoked += 1
                rows.append(row)
            last_seq = None
            if revoked:
                # One block of the revocation sequence per batch, so responders see the changes.
                seq = next_values(s, REVOCATION_SEQ, revoked, start=REVOCATION_SEQ_START)
                for row in rows:
                    if row["status"] == CertState.REVOKED:
                        row["status_seq"] = seq
                        seq += 1
                last_seq = seq - 1
            # Core executemany, not the ORM bulk path: the ORM splits a batch into many small
            # executemany calls wherever the set of non-NULL columns changes (revoked vs good rows).
            conn = s.connection()
            conn.execute(insert(_table(Holder)), holders)
            if conn.dialect.name == "postgresql":
                # These ids were chosen here, so the table's own sequence did not move: move it past
                # them, or the next holder added through the API or the CLI reuses an id (a 500).
                conn.execute(text("SELECT setval(pg_get_serial_sequence('holders', 'id'), "
                                  "(SELECT max(id) FROM holders))"))
            conn.execute(insert(_table(Certificate)), rows)
            note_partitions(conn, ((cast(int, r["ca_id"]), cast(str, r["municipality"])) for r in rows))
        if last_seq is not None and self.rt.epoch is not None:
            self.rt.epoch.publish(last_seq)
        return revoked


def _table(model: type[Base]) -> Table:
    """The mapped Table (declarative ``__table__`` is typed as any FromClause)."""
    return model.metadata.tables[model.__tablename__]


@audit.operation("seed", "{n} holders")
def seed_holders(rt: SeedRuntime, n: int, *, workers: int | None = None, rng_seed: int | None = None,
                 key_pool: int = 16, public_keys: list[bytes] | None = None, progress: bool = True) -> SeedResult:
    """Seed ``n`` holders.  ``public_keys``: caller-supplied subject public keys (PEM or DER) used
    instead of a generated pool of ``key_pool`` keys."""
    from tqdm import tqdm

    started = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    pool_der = None
    if public_keys:
        pool_der = [keys.load_public_key(k, "public_keys").public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) for k in public_keys]
        key_pool = len(pool_der)
    # A generated pool is split between the workers; jobs pick a key index modulo the pool a worker has.
    per_worker = key_pool if pool_der is not None else -(-key_pool // workers)
    batches = _Batches(rt, random.Random(rng_seed), key_pool)
    sealed = [rt.keyring.sealed_signer(i.id) for i in batches.issuers.values()]
    init_args = (sealed, pool_der, per_worker, rt.authority.ee_profile)
    pool = mp.get_context("fork").Pool(workers, _worker_init, init_args) if workers > 1 else None
    if pool is None:
        _worker_init(*init_args)

    def submit(jobs: list[Job]) -> list[list[bytes]] | AsyncResult[list[list[bytes]]]:
        chunk = max(1, len(jobs) // (workers * 4))  # several chunks per worker keep every core busy
        parts = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
        if pool is None:
            return [_sign_jobs(p) for p in parts]
        return pool.map_async(_sign_jobs, parts)

    totals = [0, 0, 0]  # holders, certificates, revoked
    bar = tqdm(total=n, unit="holder", desc="seeding", disable=not progress, smoothing=0.1)
    try:
        remaining, pending = n, None
        # Pipeline: the pool signs batch k+1 while this process stores batch k.
        while remaining or pending:
            nxt = None
            if remaining:
                size = min(BATCH, remaining)
                remaining -= size
                prepared = batches.prepare(size)
                nxt = (prepared, submit(prepared[1]))
            if pending:
                (holders, jobs, fates), result = pending
                parts = result if isinstance(result, list) else result.get()
                ders = [d for part in parts for d in part]
                totals[2] += batches.store(holders, jobs, fates, ders)
                totals[0] += len(holders)
                totals[1] += len(ders)
                bar.update(len(holders))
            pending = nxt
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    return SeedResult(totals[0], totals[1], totals[2], time.perf_counter() - started)


def split_pem(data: bytes, field: str) -> list[bytes]:
    """The PEM blocks of a file of public keys."""
    blocks = [b"-----BEGIN" + part for part in data.split(b"-----BEGIN")[1:]]
    if not blocks:
        from jpki_mock.errors import MalformedData

        raise MalformedData("contains no PEM public key", field=field, allowed="-----BEGIN PUBLIC KEY----- blocks")
    return blocks


_HOLDER_STATE = {"death": HolderState.DECEASED, "cessation": HolderState.RETURNED, "hold": HolderState.LOST}
_REASON = {
    "superseded": Reason.SUPERSEDED,
    "cessation": Reason.CESSATION_OF_OPERATION,
    "death": Reason.CESSATION_OF_OPERATION,
    "key_compromise": Reason.KEY_COMPROMISE,
    "hold": Reason.CERTIFICATE_HOLD,
}


def _reason_for(fate: str, kind: str) -> Reason | None:
    if fate == "sign_affiliation_changed":
        return Reason.AFFILIATION_CHANGED if kind == Kind.SIGN else None
    return _REASON.get(fate)
