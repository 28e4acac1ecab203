"""National-scale seeding: holders and certificate records without signing each certificate.

A JPKI-sized population (42 M cards, two certificates each: docs/sources.md section 1) cannot be
signed up front at a few thousand RSA signatures a second.  Here each certificate is a record
whose DER is fully determined by its columns (serial, subject CN, validity, CA generation, a key
of the seeding pool in ``seed_keys``, and the holder's basic four for a signature certificate):
:meth:`ca.certificates.Certificates.der_of` signs it on first use and stores it.  Everything that
needs only status (OCSP, CRLs, load tests) reads the records.

Rows go in through the raw DBAPI connection, in chunks (memory stays flat): plain tuples with
``executemany`` in one transaction per chunk on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL.
Serials, holder ids and the revocation sequence are reserved from the same counters issuance
uses, in the chunk's own transaction, so later issuance and revocations carry on from them.
The revocation mix is :data:`ca.seed.MIX`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import struct
import time
from base64 import b32encode
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy.schema import CreateIndex

from jpki_mock import municipalities
from jpki_mock.ca import basic4 as b4
from jpki_mock.ca import keys
from jpki_mock.ca.issuance import MIN_SIGN_AGE
from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.ca.seed import (
    _HOLDER_STATE,
    GIVEN,
    MIX,
    SURNAMES,
    SeedResult,
    SeedRuntime,
    _reason_for,
    _table,
)
from jpki_mock.ca.serials import SERIALS
from jpki_mock.ca.status import REVOCATION_SEQ
from jpki_mock.clock import JST
from jpki_mock.vocab import KINDS, CertState, HolderState, Kind

#: holders per chunk: ~1.9 certificate records each; a chunk's rows are the only ones held in memory
CHUNK = 20_000
HOLDER_COLUMNS = ("id", "name", "date_of_birth", "gender", "address", "name_flags", "address_flags",
                  "municipality", "card_expiry", "state", "created_at", "updated_at")
CERT_COLUMNS = ("ca_id", "kind", "serial", "holder_id", "municipality", "subject_cn", "not_before", "not_after",
                "status", "revoked_at", "reason", "status_seq", "issued_at", "seed_key")
_DAY = 86400
_MAX_AGE_DAYS = 95 * 365
#: one holder's random draws: municipality, name, age in days, three address numbers, fate,
#: issuance offset, gender, two pool keys, revocation offset, the user-auth CN's 15 bytes
_DRAW = struct.Struct("<HBHBBBHIBBBI15s")
_FATE_LIST = [fate for fate, _ in MIX] + ["good"]
#: MIX's cumulative shares on a 16-bit scale, for bisect (ca.seed._pick_fate on a 0..65535 draw)
_FATE_EDGES = list(accumulate(round(share * 65536) for _, share in MIX))
_JST_OFFSET = 9 * 3600
_EPOCH_DAY = date(1970, 1, 1)
_KINDS, _AUTH_ONLY = tuple(KINDS), (Kind.AUTH,)
# Plain str values (not the vocab enums): the DBAPI drivers bind them without adaptation.
_GOOD, _REVOKED = str(CertState.GOOD.value), str(CertState.REVOKED.value)
_SIGN, _AUTH = str(Kind.SIGN.value), str(Kind.AUTH.value)
_REASONS = {(fate, kind): None if (r := _reason_for(fate, kind)) is None else int(r)
            for fate in _FATE_LIST for kind in KINDS}
_STATES = {fate: str(_HOLDER_STATE.get(fate, HolderState.ACTIVE).value) for fate in _FATE_LIST}


class _Writer:
    """One raw DBAPI connection: counters reserved and a chunk's rows written in one transaction."""

    def __init__(self, rt: SeedRuntime):
        self.engine = rt.store.engine
        self.pg = self.engine.dialect.name == "postgresql"
        self.conn: Any = self.engine.raw_connection()
        #: CREATE INDEX statements to run at :meth:`finish` (:meth:`defer_indexes`)
        self.deferred: list[str] = []
        if not self.pg:
            cur = self.conn.cursor()
            # Bulk load: no fsync per commit (a crash mid-seed leaves a database to delete anyway)
            # and a large page cache for the index B-trees.
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-262144")
            cur.execute("PRAGMA temp_store=MEMORY")
            # Every holder id and CA id written here was just allocated or read here: checking
            # each row's foreign keys would only cost time (this connection alone).
            cur.execute("PRAGMA foreign_keys=OFF")
            cur.close()

    def defer_indexes(self) -> None:
        """Into empty tables, drop the secondary indexes and build them once at :meth:`finish`:
        one sort per index instead of a random B-tree insertion per row and index (the notAfter and
        municipality-partition indexes take rows in no useful order).  Not when the tables hold
        rows already: responders reading them meanwhile would lose their indexes."""
        cur = self.conn.cursor()
        cur.execute("SELECT 1 FROM certificates LIMIT 1")
        empty = cur.fetchone() is None
        if empty:
            for table in (_table(Certificate), _table(Holder)):
                for index in table.indexes:
                    cur.execute(f"DROP INDEX {index.name}")
                    self.deferred.append(str(CreateIndex(index).compile(dialect=self.engine.dialect)))
        cur.close()
        self.conn.commit()

    def reserve(self, cur: Any, name: str, count: int) -> int:
        """The first of ``count`` values of counter ``name`` (created by ``jpki-mock init``)."""
        cur.execute(f"UPDATE counters SET value = value + {int(count)} WHERE name = '{name}' RETURNING value")
        row = cur.fetchone()
        if row is None:
            raise LookupError(f"counter {name} missing: run `jpki-mock init` first")
        return int(row[0]) - count + 1

    def next_holder_id(self) -> int:
        cur = self.conn.cursor()
        cur.execute("SELECT max(id) FROM holders")
        top = cur.fetchone()[0]
        cur.close()
        self.conn.commit()
        return int(top or 0) + 1

    def write(self, holders: list[tuple[Any, ...]], certs: list[tuple[Any, ...]]) -> None:
        cur = self.conn.cursor()
        try:
            if self.pg:
                self._copy(cur, "holders", HOLDER_COLUMNS, holders)
                self._copy(cur, "certificates", CERT_COLUMNS, certs)
            else:
                cur.executemany(f"INSERT INTO holders ({','.join(HOLDER_COLUMNS)}) VALUES "
                                f"({','.join('?' * len(HOLDER_COLUMNS))})", holders)
                cur.executemany(f"INSERT INTO certificates ({','.join(CERT_COLUMNS)}) VALUES "
                                f"({','.join('?' * len(CERT_COLUMNS))})", certs)
        finally:
            cur.close()

    @staticmethod
    def _copy(cur: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        with cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def finish(self) -> None:
        cur = self.conn.cursor()
        for ddl in self.deferred:
            cur.execute(ddl)
        cur.close()
        self.conn.commit()
        if self.pg:
            cur = self.conn.cursor()
            # Holder ids were chosen here, so the table's own sequence did not move: move it past them,
            # or the next holder added through the API or the CLI reuses an id.
            cur.execute("SELECT setval(pg_get_serial_sequence('holders', 'id'), (SELECT max(id) FROM holders))")
            cur.execute("ANALYZE holders")
            cur.execute("ANALYZE certificates")
            cur.close()
            self.conn.commit()
        else:
            cur = self.conn.cursor()
            cur.execute("PRAGMA synchronous=NORMAL")  # what jpki_mock.db sets on every connection
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
        self.conn.close()


def _key_pool(rt: SeedRuntime, writer: _Writer, size: int, public_keys: list[bytes] | None) -> list[int]:
    """Store the pool's public keys in ``seed_keys``; their ids."""
    if public_keys:
        spkis = [keys.load_public_key(k, "public_keys").public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) for k in public_keys]
    else:
        spkis = [keys.generate_rsa().public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) for _ in range(size)]
    cur = writer.conn.cursor()
    cur.execute("SELECT max(id) FROM seed_keys")
    first = int(cur.fetchone()[0] or 0) + 1
    mark = "%s" if writer.pg else "?"
    ids = list(range(first, first + len(spkis)))
    cur.executemany(f"INSERT INTO seed_keys (id, spki_der) VALUES ({mark}, {mark})", list(zip(ids, spkis, strict=True)))
    cur.close()
    writer.conn.commit()
    return ids


class _Generator:
    """Holder and certificate rows of one chunk, as plain tuples in the tables' column order.

    Times are whole seconds before ``now`` and are formatted from integers with cached day
    strings: building datetime objects per row was most of the generation cost.  The values are
    exactly what the ORM stores (:class:`jpki_mock.db.UTCDateTime`: naive UTC text
    'YYYY-MM-DD HH:MM:SS.ffffff'), which PostgreSQL's COPY parses into the timestamp columns."""

    def __init__(self, rt: SeedRuntime, seed: int, key_ids: list[int], first_holder: int, serials: dict[str, int],
                 seq_first: int):
        self.seed = seed
        self.first_holder, self.serials, self.seq_first = first_holder, serials, seq_first
        self.now = rt.clock.now()
        self.now_epoch = int(self.now.timestamp())
        self.micro = f".{self.now.microsecond:06d}"
        self.today = self.now.astimezone(JST).date()
        self.tomorrow = (self.today + timedelta(days=1)).isoformat()
        self.key_ids = key_ids
        self.issuers = {k: rt.authority.issuer(k).id for k in KINDS}
        self.munis = list(municipalities.MUNICIPALITIES.values())
        self.names = [(f"{s}\u3000{g}", "0" * (len(s) + 1 + len(g))) for s in SURNAMES for g in GIVEN]
        self._births: dict[int, tuple[date, str, bool]] = {}
        self._days: dict[int, date] = {}
        self.now_s = self.utc(self.now_epoch)

    def day(self, number: int) -> date:
        """The date of day ``number`` since 1970-01-01."""
        got = self._days.get(number)
        if got is None:
            got = self._days[number] = _EPOCH_DAY + timedelta(days=number)
        return got

    def utc(self, epoch: int) -> str:
        sod = epoch % _DAY
        return f"{self.day(epoch // _DAY)} {sod // 3600:02d}:{sod // 60 % 60:02d}:{sod % 60:02d}{self.micro}"

    def _birth(self, age_days: int) -> tuple[date, str, bool]:
        got = self._births.get(age_days)
        if got is None:
            birth = self.today - timedelta(days=age_days)
            got = self._births[age_days] = (birth, b4.encode_dob(birth),
                                            b4.age_on(birth, self.today) >= MIN_SIGN_AGE)
        return got

    def not_after(self, birth: date, nb_epoch: int) -> str:
        """23:59:59 JST of the fifth birthday after issuance (:func:`ca.basic4.nth_birthday_after`)."""
        day = self.day((nb_epoch + _JST_OFFSET) // _DAY)
        if birth.month == 2 and birth.day == 29:
            end = b4.nth_birthday_after(birth, day, 5)
        else:
            year = day.year if (birth.month, birth.day) > (day.month, day.day) else day.year + 1
            end = date(year + 4, birth.month, birth.day)
        return f"{end} 14:59:59.000000"

    def chunk(self, index: int, first_holder: int, size: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """(holder rows, certificate rows) of holders ``first_holder`` .. ``+size``."""
        rng = random.Random(f"{self.seed}/{index}")
        now_epoch, now_s, utc, tomorrow = self.now_epoch, self.now_s, self.utc, self.tomorrow
        holders: list[tuple[Any, ...]] = []
        certs: list[tuple[Any, ...]] = []
        munis, names, key_ids, fates = self.munis, self.names, self.key_ids, _FATE_LIST
        n_keys, n_munis, n_names = len(key_ids), len(munis), len(names)
        sign_id, auth_id = self.issuers[Kind.SIGN], self.issuers[Kind.AUTH]
        # All of a chunk's random numbers in one call, unpacked in C: one rng call per value was
        # most of the cost.  Modulo bias (< 3 % between municipalities) does not matter for a mix.
        draws = struct.iter_unpack(_DRAW.format, rng.randbytes(_DRAW.size * size))
        sign_first, auth_first, seq_first = self.serials[_SIGN], self.serials[_AUTH], self.seq_first
        for hid, (m, nm, age, a1, a2, a3, f, off, g, k1, k2, rv, cn_bytes) in zip(
                range(first_holder, first_holder + size), draws, strict=False):
            # Serials and revocation-sequence values were reserved for the whole run: one per holder
            # and kind (a minor's unused signature serial is a gap, as the counters allow).
            offset = hid - self.first_holder
            muni = munis[m % n_munis]
            code = muni.code
            name, name_flags = names[nm % n_names]
            birth, dob, adult = self._birth(age % _MAX_AGE_DAYS)
            address = f"{muni.address_prefix}{a1 % 9 + 1}丁目{a2 % 30 + 1}番{a3 % 20 + 1}号"
            fate = fates[bisect_right(_FATE_EDGES, f)]
            if fate == "expired":
                nb = now_epoch - (5 * 365 + 1 + off % 200) * _DAY
                na_s = f"{self.day((now_epoch - (1 + rv % 180) * _DAY) // _DAY)} 14:59:59.000000"
            else:
                nb = now_epoch - off % (3 * 365 * _DAY)
                na_s = self.not_after(birth, nb)
                if na_s <= now_s:
                    na_s = f"{b4.nth_birthday_after(birth, self.today, 5)} 14:59:59.000000"
            nb_s = utc(nb)
            holders.append((hid, name, dob, "12"[g & 1], address, name_flags, "0" * len(address), code,
                            max(na_s[:10], tomorrow), _STATES[fate], nb_s, now_s))
            for kind in (_KINDS if adult else _AUTH_ONLY):
                reason = _REASONS[fate, kind]
                revoked_at = None
                if reason is not None:
                    revoked_at = utc(min(now_epoch, nb + 3600 + rv % (400 * _DAY)))
                if kind == Kind.SIGN:
                    serial = sign_first + offset
                    # profile.sign_cn from integers: issuance time (JST) + sequence + office code [S]
                    t = nb + _JST_OFFSET
                    sod = t % _DAY
                    cn = (f"{self.day(t // _DAY):%Y%m%d}{sod // 3600:02d}{sod // 60 % 60:02d}{sod % 60:02d}"
                          f"{serial % 1_000_000:06d}{code}")
                    row = (sign_id, _SIGN, serial, hid, code, cn, nb_s, na_s,
                           _GOOD if reason is None else _REVOKED, revoked_at, reason,
                           0 if reason is None else seq_first + 2 * offset, nb_s, key_ids[k1 % n_keys])
                else:
                    # 23 opaque characters [S] (profile.auth_cn): base32's alphabet is a subset of its own.
                    row = (auth_id, _AUTH, auth_first + offset, hid, code, b32encode(cn_bytes)[:23].decode(), nb_s,
                           na_s, _GOOD if reason is None else _REVOKED, revoked_at, reason,
                           0 if reason is None else seq_first + 2 * offset + 1, nb_s, key_ids[k2 % n_keys])
                certs.append(row)
        return holders, certs


_GEN: list[_Generator] = []


def _generate(job: tuple[int, int, int]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """One chunk's rows, in a generator process (``_GEN`` was set before the fork)."""
    index, first_holder, size = job
    return _GEN[0].chunk(index, first_holder, size)


def _in_order(pool: Any, jobs: list[tuple[int, int, int]], window: int
              ) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Each job's rows, in order, with at most ``window`` chunks generated ahead of the writer:
    ``Pool.imap`` would queue every finished chunk, and memory would grow with the population
    whenever the generators outpace the database."""
    if pool is None:
        yield from map(_generate, jobs)
        return
    pending: deque[Any] = deque()
    for job in jobs:
        pending.append(pool.apply_async(_generate, (job,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def seed_records(rt: SeedRuntime, n: int, *, rng_seed: int | None = None, key_pool: int = 16,
                 public_keys: list[bytes] | None = None, progress: bool = True, workers: int | None = None
                 ) -> SeedResult:
    """Seed ``n`` holders with unsigned certificate records (``jpki-mock seed --lazy``).

    ``workers``: processes generating rows while this one writes them (default: the cores but
    one, at most two; 0: generate here); each chunk has its own random stream, so a given
    ``rng_seed`` seeds the same population whatever the number of workers."""
    from tqdm import tqdm

    started = time.perf_counter()
    writer = _Writer(rt)
    key_ids = _key_pool(rt, writer, key_pool, public_keys)
    seed = rng_seed if rng_seed is not None else random.SystemRandom().getrandbits(64)
    first_holder = writer.next_holder_id()
    cur = writer.conn.cursor()
    # The whole run's numbers in one transaction: at most one certificate per holder and kind, and
    # at most one revocation each; later issuance and revocations carry on after them.
    serials = {str(k.value): writer.reserve(cur, SERIALS[k], n) for k in KINDS}
    seq_first = writer.reserve(cur, REVOCATION_SEQ, 2 * n)
    cur.close()
    writer.conn.commit()
    writer.defer_indexes()
    _GEN[:] = [_Generator(rt, seed, key_ids, first_holder, serials, seq_first)]
    if workers is None:
        workers = min(2, (os.cpu_count() or 1) - 1)
    totals = [0, 0, 0]  # holders, certificates, revoked
    bar = tqdm(total=n, unit="holder", desc="seeding records", disable=not progress, smoothing=0.1)
    pool = mp.get_context("fork").Pool(workers) if workers > 0 else None
    try:
        jobs = [(i, first_holder + i * CHUNK, min(CHUNK, n - i * CHUNK)) for i in range(-(-n // CHUNK))]
        for holders, certs in _in_order(pool, jobs, 2 * workers + 1):
            writer.write(holders, certs)
            writer.conn.commit()
            revoked = [row[11] for row in certs if row[11]]
            if revoked and rt.epoch is not None:
                # Responders learn of the new revocations as of any other (ca.revocation).
                rt.epoch.publish(max(revoked))
            totals[0] += len(holders)
            totals[1] += len(certs)
            totals[2] += len(revoked)
            bar.update(len(holders))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        _GEN.clear()
        writer.finish()
    return SeedResult(totals[0], totals[1], totals[2], time.perf_counter() - started)


__all__ = ["CERT_COLUMNS", "HOLDER_COLUMNS", "seed_records"]
