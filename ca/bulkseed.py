"""National-scale seeding: holders and certificate records without signing each certificate.

A JPKI-sized population (42 M cards, two certificates each: docs/sources.md section 1) cannot be
signed up front at a few thousand RSA signatures a second.  Here each certificate is a record
whose DER is fully determined by its columns (serial, subject CN, validity, CA generation, a key
of the seeding pool in ``seed_keys``, and the holder's basic four for a signature certificate):
:meth:`ca.certificates.Certificates.der_of` signs it on first use and stores it.  Everything that
needs only status (OCSP, CRLs, load tests) reads the records.

Processes generate the rows a chunk at a time (memory stays flat) and one writer puts each chunk
in, in one transaction, through the raw DBAPI connection: on SQLite a staged in-memory database
copied with ``INSERT ... SELECT``, on PostgreSQL ``COPY ... FROM STDIN (FORMAT BINARY)``.  Serials,
the revocation sequence and (PostgreSQL) certificate ids are reserved for the whole run from the
same counters and sequence issuance uses, so later issuance and revocations carry on after them.
The revocation mix is :data:`ca.seed.MIX`.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import os
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import serialization
from sqlalchemy.schema import CreateIndex

from jpki_mock import municipalities
from jpki_mock.ca import basic4 as b4
from jpki_mock.ca import keys
from jpki_mock.ca.issuance import MIN_SIGN_AGE
from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.ca.pgcopy import Piece, Rows, Texts, stream
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

log = logging.getLogger(__name__)

#: holders per chunk: ~1.9 certificate records each; a chunk's rows are the only ones held in memory
CHUNK = 20_000
HOLDER_COLUMNS: tuple[str, ...] = (
    "id", "name", "date_of_birth", "gender", "address", "name_flags", "address_flags", "municipality", "card_expiry",
    "state", "created_at", "updated_at")
CERT_COLUMNS: tuple[str, ...] = (
    "ca_id", "kind", "serial", "holder_id", "municipality", "subject_cn", "not_before", "not_after", "status",
    "revoked_at", "reason", "status_seq", "issued_at", "seed_key")
#: on PostgreSQL the rows carry their ids, reserved from the table's sequence for the whole run
#: (:meth:`_Writer.reserve_ids`): a ``nextval`` per row was a fifth of the server's time per record
PG_CERT_COLUMNS = (*CERT_COLUMNS, "id")
_DAY = 86400
_MAX_AGE_DAYS = 95 * 365
_FATE_LIST = [fate for fate, _ in MIX] + ["good"]
#: MIX's cumulative shares on a 16-bit scale, for searchsorted on a 0..65535 draw (ca.seed._pick_fate)
_FATE_EDGES = list(accumulate(round(share * 65536) for _, share in MIX))
_JST_OFFSET = 9 * 3600
_EPOCH_DAY = date(1970, 1, 1)
# Plain str values (not the vocab enums): the DBAPI drivers bind them without adaptation.
_GOOD, _REVOKED = str(CertState.GOOD.value), str(CertState.REVOKED.value)
_SIGN, _AUTH = str(Kind.SIGN.value), str(Kind.AUTH.value)
_REASONS = {(fate, kind): None if (r := _reason_for(fate, kind)) is None else int(r)
            for fate in _FATE_LIST for kind in KINDS}
_STATES = {fate: str(_HOLDER_STATE.get(fate, HolderState.ACTIVE).value) for fate in _FATE_LIST}


#: SQLite settings of the loading connection: (while loading, what every connection has).
#: synchronous OFF: a killed process loses nothing committed (the OS holds the writes), only a
#: machine crash mid-seed could; a large page cache for the B-trees; foreign keys unchecked, as
#: every holder id and CA id written was just allocated or read here.  mmap_size and threads
#: are set for the index builds only (:meth:`_Writer.finish`).
_BULK_PRAGMAS = {
    "synchronous": ("OFF", "NORMAL"),
    "cache_size": ("-262144", "-2000"),
    "temp_store": ("MEMORY", "DEFAULT"),
    "foreign_keys": ("OFF", "ON"),
    "mmap_size": ("0", "0"),
    "threads": ("0", "0"),
}


def _pragmas(cur: Any, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        cur.execute(f"PRAGMA {name}={value}")


class _Writer:
    """One raw DBAPI connection: counters reserved and a chunk's rows written in one transaction."""

    def __init__(self, rt: SeedRuntime):
        self.engine = rt.store.engine
        self.pg = self.engine.dialect.name == "postgresql"
        self.conn: Any = self.engine.raw_connection()
        #: how a query names a bound value in the driver's paramstyle (PEP 249): psycopg's
        #: "format", sqlite3's "qmark"
        self.param = "%s" if self.pg else "?"
        #: CREATE INDEX statements to run at :meth:`finish` (:meth:`defer_indexes`)
        self.deferred: list[str] = []
        #: PostgreSQL: whether foreign-key triggers are off for this connection
        self.replica = False
        #: (issuer id, municipality) pairs written in this run: each goes in once, not once a chunk
        #: (measured on PostgreSQL: re-inserting a chunk's ~3,800 pairs cost 1.7 microseconds a record)
        self.noted: set[tuple[int, str]] = set()
        if self.pg:
            from psycopg.errors import InsufficientPrivilege

            cur = self.conn.cursor()
            try:
                # The foreign keys' triggers check every COPY row (measured: half the load's
                # time); every id written here was just allocated or read here.  Setting this
                # needs a superuser (or, from PostgreSQL 15, a GRANT SET on the parameter):
                # otherwise the checks stay and the load is slower.
                cur.execute("SET session_replication_role = replica")
                self.conn.commit()
                self.replica = True
            except InsufficientPrivilege:
                self.conn.rollback()
            cur.close()
        else:
            cur = self.conn.cursor()
            _pragmas(cur, {name: bulk for name, (bulk, _) in _BULK_PRAGMAS.items()})
            cur.close()

    def defer_indexes(self) -> None:
        """Into empty tables, drop the secondary indexes and build them once at :meth:`finish`:
        one sort per index instead of a B-tree insertion per row and index.  Measured at 10 M
        records: keeping the partial (revoked-only), the holder-id or the municipality index
        during the load moved as much time into the load as it saved at the end (both cores are
        busy throughout).  Not when the tables hold rows already: responders reading them
        meanwhile would lose their indexes."""
        cur = self.conn.cursor()
        cur.execute("SELECT 1 FROM certificates LIMIT 1")
        empty = cur.fetchone() is None
        if empty:
            # Largest first (full indexes over the certificates, then the holders', then the
            # partial ones): on PostgreSQL two connections share them out (:meth:`_build`).
            certs = _table(Certificate)
            for _, index in sorted(((t, i) for t in (certs, _table(Holder)) for i in t.indexes),
                                   key=lambda ti: (ti[1].dialect_options["postgresql"]["where"] is not None,
                                                   ti[0] is not certs, ti[1].name)):
                cur.execute(f"DROP INDEX {index.name}")
                # IF NOT EXISTS: a process opening the store meanwhile may have put it back
                # (jpki_mock.db.Store.check_schema, after a seed was killed).
                self.deferred.append(str(CreateIndex(index, if_not_exists=True).compile(
                    dialect=self.engine.dialect)))
        cur.close()
        self.conn.commit()

    def reserve(self, cur: Any, name: str, count: int) -> int:
        """The first of ``count`` values of counter ``name`` (created by ``jpki-mock init``)."""
        cur.execute(f"UPDATE counters SET value = value + {int(count)} WHERE name = '{name}' RETURNING value")
        row = cur.fetchone()
        if row is None:
            raise LookupError(f"counter {name} missing: run `jpki-mock init` first")
        return int(row[0]) - count + 1

    def reserve_ids(self, cur: Any, count: int) -> int:
        """PostgreSQL: the first of ``count`` consecutive certificate ids taken from the table's
        sequence.  ``ALTER SEQUENCE`` first: its lock holds off every other session's ``nextval``
        until this transaction ends, so none can take an id between the two calls below."""
        cur.execute("SELECT pg_get_serial_sequence('certificates', 'id')")
        seq = cur.fetchone()[0]
        cur.execute(f"ALTER SEQUENCE {seq} INCREMENT BY 1")
        cur.execute("SELECT nextval(%s)", (seq,))
        first = int(cur.fetchone()[0])
        cur.execute("SELECT setval(%s, %s)", (seq, first + count - 1))
        return first

    def next_holder_id(self) -> int:
        cur = self.conn.cursor()
        cur.execute("SELECT max(id) FROM holders")
        top = cur.fetchone()[0]
        cur.close()
        self.conn.commit()
        return int(top or 0) + 1

    def write(self, chunk: _Chunk) -> None:
        """One chunk's rows and partitions, committed together."""
        cur = self.conn.cursor()
        attached = False
        new = [pair for pair in chunk.partitions if pair not in self.noted]
        try:
            if self.pg:
                holders, certs = chunk.payload
                for table, columns, data in (("holders", HOLDER_COLUMNS, holders),
                                             ("certificates", PG_CERT_COLUMNS, certs)):
                    with cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.write(data)
            else:
                assert isinstance(chunk.payload, bytes)
                # A fresh schema each chunk: statements prepared against the previous chunk's
                # database would be reused over the new one (same schema cookie) and read it wrongly.
                cur.execute("ATTACH DATABASE ':memory:' AS stage")
                attached = True
                self.conn.driver_connection.deserialize(chunk.payload, name="stage")
                for table, name, columns in (("holders", "h", HOLDER_COLUMNS), ("certificates", "c", CERT_COLUMNS)):
                    values = ",".join(_SELECT[name][c] for c in columns)
                    cur.execute(f"INSERT INTO main.{table} ({','.join(columns)}) SELECT {values} FROM stage.{name}")
            # ca.models.note_partitions's statement, on this raw connection
            cur.executemany(f"INSERT INTO cert_partitions (ca_id, municipality) VALUES ({self.param}, {self.param}) "
                            "ON CONFLICT DO NOTHING", new)
            self.conn.commit()
            self.noted.update(new)
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            if attached:
                cur.execute("DETACH DATABASE stage")
            cur.close()

    def finish(self) -> None:
        cur = self.conn.cursor()
        if self.pg:
            if self.replica:
                # The connection goes back to the pool: foreign keys checked again from here on.
                cur.execute("SET session_replication_role = DEFAULT")
            self.conn.commit()
            self._build(self.deferred, 2)
            # Holder ids were chosen here, so the table's own sequence did not move: move it past them,
            # or the next holder added through the API or the CLI reuses an id.
            cur.execute("SELECT setval(pg_get_serial_sequence('holders', 'id'), (SELECT max(id) FROM holders))")
            cur.execute("ANALYZE holders")
            cur.execute("ANALYZE certificates")
        else:
            if self.deferred:
                # Each index build reads the whole table: through a memory map rather than read()
                # calls into the page cache (measured: the notAfter index over 10 M records, 32 s -> 26 s).
                # The sorter: runs of 64 MB merged by two threads (the other core is idle now);
                # measured on the notAfter index of 10 M records: 25.7 s with 256 MB in one thread,
                # 23.9 s so.
                _pragmas(cur, {"mmap_size": str(8 << 30), "cache_size": "-65536", "threads": "2"})
            for ddl in self.deferred:
                self._create(cur, ddl)
            self.conn.commit()  # the pragmas below do not change inside a transaction
            # Back to what every other connection has (jpki_mock.db, SQLite's defaults).
            _pragmas(cur, {name: normal for name, (_, normal) in _BULK_PRAGMAS.items()})
        cur.close()
        self.conn.commit()
        self.conn.close()

    @staticmethod
    def _create(cur: Any, ddl: str) -> None:
        started = time.perf_counter()
        cur.execute(ddl)
        log.debug("%.1f s: %s", time.perf_counter() - started, ddl)

    def _build(self, ddls: list[str], connections: int) -> None:
        """PostgreSQL: the index builds shared out over ``connections`` sessions, each building one
        index at a time in one process.  Measured at 10 M records on two cores: a build's sort
        merges in its leader alone, so one build at a time with parallel workers left a core
        idle for much of it; two at a time took 12.5 to 12.8 s against 12.5 to 15.1 s."""
        queue = deque(ddls)
        failed: list[BaseException] = []

        def work() -> None:
            conn = self.engine.raw_connection()
            try:
                cur = conn.cursor()
                cur.execute("SET max_parallel_maintenance_workers = 0")
                # One sort in memory per index rather than runs on disk (a session setting).
                cur.execute("SET maintenance_work_mem = '512MB'")
                while not failed:
                    try:
                        ddl = queue.popleft()  # atomic: the other thread takes each once
                    except IndexError:
                        return
                    self._create(cur, ddl)
                    conn.commit()
            except BaseException as exc:  # re-raised in the calling thread below
                failed.append(exc)
            finally:
                conn.close()

        threads = [threading.Thread(target=work, name=f"index-build-{i}") for i in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failed:
            raise failed[0]


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
    ids = list(range(first, first + len(spkis)))
    cur.executemany(f"INSERT INTO seed_keys (id, spki_der) VALUES ({writer.param}, {writer.param})",
                    list(zip(ids, spkis, strict=True)))
    cur.close()
    writer.conn.commit()
    return ids


def _leap(years: np.ndarray) -> np.ndarray:
    leap: np.ndarray = (years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))
    return leap


class _Generator:
    """A chunk's holders and certificate records, computed a column at a time with numpy.

    :meth:`draw` makes the chunk's random draws and what follows from them, as numbers; the rows
    are then laid out for the store: :meth:`text` joins strings for SQLite, :meth:`binary` lays
    out PostgreSQL's binary COPY rows (:mod:`jpki_mock.ca.pgcopy`).  Every string a row holds
    comes from a table built once here (days, times of day, birth dates, names, addresses, the
    6-digit sequence part of a signature CN) and is picked by index and joined elementwise in C:
    a loop over rows in Python cost about 8 microseconds a record, four times the rest of
    seeding together.  Times are exactly what the ORM stores (:class:`jpki_mock.db.UTCDateTime`:
    naive UTC, 'YYYY-MM-DD HH:MM:SS.ffffff' as text on SQLite)."""

    def __init__(self, rt: SeedRuntime, seed: int, key_ids: list[int], first_holder: int, serials: dict[str, int],
                 seq_first: int, id_first: int | None):
        """``id_first``: PostgreSQL's first reserved certificate id; None on SQLite, which numbers
        the rows itself."""
        self.seed, self.pg, self.id_first = seed % 2**64, id_first is not None, id_first or 0
        self.first_holder, self.seq_first = first_holder, seq_first
        self.sign_first, self.auth_first = serials[_SIGN], serials[_AUTH]
        now = rt.clock.now()
        self.now, self.micro = int(now.timestamp()), now.microsecond
        today = now.astimezone(JST).date()
        self.key_ids = np.array(key_ids, dtype=np.int64)
        self.ca_ids = {Kind.SIGN: rt.authority.issuer(Kind.SIGN).id, Kind.AUTH: rt.authority.issuer(Kind.AUTH).id}
        munis = list(municipalities.MUNICIPALITIES.values())
        self.codes = Texts(m.code for m in munis)
        self.prefixes = Texts(m.address_prefix for m in munis)
        self.prefix_len = np.array([len(m.address_prefix) for m in munis])
        suffixes = [f"{a}丁目{b}番{c}号" for a in range(1, 10) for b in range(1, 31) for c in range(1, 21)]
        self.suffixes, self.suffix_len = Texts(suffixes), np.array([len(x) for x in suffixes])
        self.zeros = Texts("0" * k for k in range(int(self.prefix_len.max() + self.suffix_len.max()) + 1))
        names = [f"{s}\u3000{g}" for s in SURNAMES for g in GIVEN]
        self.names, self.name_flags = Texts(names), Texts("0" * len(n) for n in names)
        self.genders = Texts(["1", "2"])
        # Day tables: every day a row can name (issuance up to 5 years and 200 days ago, notAfter up
        # to 5 years ahead), indexed from `self.base` (days since 1970-01-01).
        today_n = (today - _EPOCH_DAY).days
        self.base = today_n - 6 * 366
        days = [_EPOCH_DAY + timedelta(days=self.base + i) for i in range(12 * 366)]
        self.iso = _objects(d.isoformat() for d in days)
        self.iso_sp = _objects(f"{d} " for d in days)
        self.compact = Texts(f"{d:%Y%m%d}" for d in days)
        self.year = np.array([d.year for d in days])
        self.md = np.array([d.month * 100 + d.day for d in days])
        micro = f".{now.microsecond:06d}"
        self.tod = _objects(f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}{micro}" for t in range(_DAY))
        self.hms = Texts(f"{t // 3600:02d}{t // 60 % 60:02d}{t % 60:02d}" for t in range(_DAY))
        self.d3 = Texts(f"{i:03d}" for i in range(1000))
        # Birth tables by age in days: the encoded date of birth, whether a signature certificate
        # may be issued (ca.issuance.MIN_SIGN_AGE), the birthday as month * 100 + day.
        births = [today - timedelta(days=a) for a in range(_MAX_AGE_DAYS)]
        self.dob = Texts(b4.encode_dob(b) for b in births)
        self.adult = np.array([b4.age_on(b, today) >= MIN_SIGN_AGE for b in births])
        self.bmd = np.array([b.month * 100 + b.day for b in births])
        self.now_s = self.utc(np.array([self.now]))[0]
        self.tomorrow = today_n + 1
        self.states = Texts(_STATES[f] for f in _FATE_LIST)
        self.statuses = Texts([_GOOD, _REVOKED])
        self.fate_edges = np.array(_FATE_EDGES)
        self.expired = _FATE_LIST.index("expired")
        self.reasons = {k: _objects(_REASONS[f, k] for f in _FATE_LIST) for k in KINDS}
        #: the reason codes as numbers, -1 where the fate revokes nothing (NULL in the row)
        self.reason_codes = {k: np.array([-1 if (r := _REASONS[f, k]) is None else r for f in _FATE_LIST])
                             for k in KINDS}
        self.revokes = {k: np.array([_REASONS[f, k] is not None for f in _FATE_LIST]) for k in KINDS}

    def utc(self, epoch: np.ndarray) -> np.ndarray:
        """'YYYY-MM-DD HH:MM:SS.ffffff' of each UTC epoch second (with the clock's microseconds)."""
        out: np.ndarray = self.iso_sp[epoch // _DAY - self.base] + self.tod[epoch % _DAY]
        return out

    def unix_us(self, epoch: np.ndarray) -> np.ndarray:
        """Microseconds since 1970 of each UTC epoch second, with the clock's microseconds as :meth:`utc`."""
        out: np.ndarray = epoch * 1_000_000 + self.micro
        return out

    def draw(self, index: int, first_holder: int, size: int) -> _Draw:
        """Holders ``first_holder`` .. ``+size`` and their certificates: signature, then user-auth."""
        rng = np.random.default_rng([self.seed, index])
        hid = np.arange(first_holder, first_holder + size, dtype=np.int64)
        # Serials, revocation-sequence values and (PostgreSQL) ids were reserved for the whole run:
        # one per holder and kind (a minor's unused signature serial is a gap, as counters and
        # sequences allow).
        offset = hid - self.first_holder
        m = rng.integers(0, len(self.codes.str), size)
        nm = rng.integers(0, len(self.names.str), size)
        age = rng.integers(0, _MAX_AGE_DAYS, size)
        sfx = rng.integers(0, len(self.suffixes.str), size)
        fate = np.searchsorted(self.fate_edges, rng.integers(0, 65536, size), side="right")
        off = rng.integers(0, 3 * 365 * _DAY, size)
        rv = rng.integers(0, 400 * _DAY, size)
        gender = rng.integers(0, 2, size)
        expired = fate == self.expired
        now = self.now
        # Issuance: within the last 3 years; an expired certificate 5 years and up to 200 days ago,
        # its notAfter 1 to 180 days ago.
        nb = np.where(expired, now - (5 * 365 + 1 + off % 200) * _DAY, now - off)
        # notAfter: 23:59:59 JST (14:59:59 UTC) of the fifth birthday strictly after the JST day of
        # issuance [C]; a 29 February birthday falls on 28 February in common years
        # (ca.basic4.nth_birthday_after, vectorised).
        day = (nb + _JST_OFFSET) // _DAY - self.base
        year, md, bmd = self.year[day], self.md[day], self.bmd[age]
        feb29 = bmd == 229
        this_year = np.where(feb29 & ~_leap(year), 228, bmd)
        end_year = year + np.where(this_year > md, 4, 5)
        end_md = np.where(feb29 & ~_leap(end_year), 228, bmd)
        first_of_month = ((end_year - 1970) * 12 + end_md // 100 - 1).astype("datetime64[M]")
        na_day = first_of_month.astype("datetime64[D]").astype(np.int64) + end_md % 100 - 1
        na_day[expired] = ((now - (1 + rv % 180) * _DAY) // _DAY)[expired]
        kinds = []
        for kind, rows in ((Kind.SIGN, np.flatnonzero(self.adult[age])), (Kind.AUTH, np.arange(size))):
            pos = 2 * offset[rows] + (0 if kind == Kind.SIGN else 1)
            serial = (self.sign_first if kind == Kind.SIGN else self.auth_first) + offset[rows]
            # 23 opaque characters [S] (profile.auth_cn): base32's alphabet is a subset of its own.
            letters = _B32[rng.integers(0, 32, (size, 23), dtype=np.uint8)] if kind == Kind.AUTH else None
            revoked = self.revokes[kind][fate[rows]]
            kinds.append(_KindDraw(kind, rows, serial, pos, revoked, np.where(revoked, self.seq_first + pos, 0),
                                   self.key_ids[rng.integers(0, len(self.key_ids), len(rows))], letters))
        return _Draw(hid, m, nm, age, sfx, fate, gender, nb, na_day, np.minimum(now, nb + 3600 + rv), kinds)

    def sign_cn(self, d: _Draw, k: _KindDraw) -> tuple[Piece, ...]:
        """profile.sign_cn: issuance time (JST) + 6-digit sequence + office code [S], as pieces."""
        t = d.nb[k.rows] + _JST_OFFSET
        six = k.serial % 1_000_000
        return (self.compact.at(t // _DAY - self.base), self.hms.at(t % _DAY), self.d3.at(six // 1000),
                self.d3.at(six % 1000), self.codes.at(d.m[k.rows]))

    def text(self, d: _Draw) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(holder columns, certificate columns) of strings and numbers, in :data:`HOLDER_COLUMNS`
        and :data:`CERT_COLUMNS` order."""
        nb_s = self.utc(d.nb)
        na = self.iso_sp[d.na_day - self.base] + "14:59:59.000000"
        size = len(d.hid)
        holders = [d.hid, self.names.str[d.nm], self.dob.str[d.age], self.genders.str[d.gender],
                   self.prefixes.str[d.m] + self.suffixes.str[d.sfx], self.name_flags.str[d.nm],
                   self.zeros.str[self.prefix_len[d.m] + self.suffix_len[d.sfx]], self.codes.str[d.m],
                   self.iso[np.maximum(d.na_day, self.tomorrow) - self.base], self.states.str[d.fate],
                   nb_s, np.full(size, self.now_s, dtype=object)]
        revoked_at = self.utc(d.revoked_at)
        certs = []
        for k in d.kinds:
            rows, n = k.rows, len(k.rows)
            if k.letters is None:
                cn = functools.reduce(np.add, (mat.view(f"S{mat.shape[1]}").ravel() for mat, _ in self.sign_cn(d, k)))
            else:
                cn = k.letters.view("S23").ravel()
            certs.append([np.full(n, self.ca_ids[k.kind]), np.full(n, str(k.kind.value), dtype=object), k.serial,
                          d.hid[rows], self.codes.str[d.m[rows]], cn.astype(f"U{cn.itemsize}").astype(object),
                          nb_s[rows], na[rows], self.statuses.str[k.revoked.astype(np.int64)],
                          np.where(k.revoked, revoked_at[rows], _NONE), self.reasons[k.kind][d.fate[rows]],
                          k.seq, nb_s[rows], k.key])
        return holders, [np.concatenate(c) for c in zip(*certs, strict=True)]

    def binary(self, d: _Draw) -> tuple[bytes, bytes]:
        """(holders, certificates) as PostgreSQL binary COPY streams, in :data:`HOLDER_COLUMNS` and
        :data:`PG_CERT_COLUMNS` order; the column types are those of :mod:`jpki_mock.ca.models`."""
        nb_us = self.unix_us(d.nb)
        holders = Rows(len(d.hid), len(HOLDER_COLUMNS))
        holders.ints(d.hid, ">i4")
        holders.text(self.names.at(d.nm))
        holders.text(self.dob.at(d.age))
        holders.text(self.genders.at(d.gender))
        holders.text(self.prefixes.at(d.m), self.suffixes.at(d.sfx))
        holders.text(self.name_flags.at(d.nm))
        holders.text(self.zeros.at(self.prefix_len[d.m] + self.suffix_len[d.sfx]))
        holders.text(self.codes.at(d.m))
        holders.dates(np.maximum(d.na_day, self.tomorrow))
        holders.text(self.states.at(d.fate))
        holders.timestamps(nb_us)
        holders.timestamps(self.unix_us(np.array(self.now)))
        na_us = (d.na_day * _DAY + 14 * 3600 + 59 * 60 + 59) * 1_000_000
        revoked_us = self.unix_us(d.revoked_at)
        certs = []
        for k in d.kinds:
            rows = k.rows
            r = Rows(len(rows), len(PG_CERT_COLUMNS))
            r.ints(self.ca_ids[k.kind], ">i4")
            r.constant(str(k.kind.value).encode())
            r.ints(k.serial, ">i8")
            r.ints(d.hid[rows], ">i4")
            r.text(self.codes.at(d.m[rows]))
            if k.letters is None:
                r.text(*self.sign_cn(d, k))
            else:
                r.text((k.letters, 23))
            r.timestamps(nb_us[rows])
            r.timestamps(na_us[rows])
            r.text(self.statuses.at(k.revoked.astype(np.int64)))
            r.timestamps(revoked_us[rows], null=~k.revoked)
            r.ints(self.reason_codes[k.kind][d.fate[rows]], ">i2", null=~k.revoked)
            r.ints(k.seq, ">i8")
            r.timestamps(nb_us[rows])
            r.ints(k.key, ">i2")
            r.ints(self.id_first + k.pos, ">i8")
            certs.append(r)
        return stream(holders), stream(*certs)


@dataclass
class _KindDraw:
    """One kind's certificates of a chunk: which holders (``rows``, indexes into the chunk), and
    what was drawn or reserved for each."""

    kind: Kind
    rows: np.ndarray
    serial: np.ndarray
    #: place in the run's reserved ranges: 2 per holder, signature then user-auth
    pos: np.ndarray
    revoked: np.ndarray
    #: revocation sequence value, 0 where not revoked
    seq: np.ndarray
    #: seed key id
    key: np.ndarray
    #: user-auth: the CN's bytes, one row each
    letters: np.ndarray | None


@dataclass
class _Draw:
    """A chunk's holders as numbers: table indexes (municipality, name, age in days, address
    suffix, fate, gender), issuance and revocation times (epoch seconds, UTC), the notAfter day
    (days since 1970-01-01), and its certificates of each kind."""

    hid: np.ndarray
    m: np.ndarray
    nm: np.ndarray
    age: np.ndarray
    sfx: np.ndarray
    fate: np.ndarray
    gender: np.ndarray
    nb: np.ndarray
    na_day: np.ndarray
    revoked_at: np.ndarray
    kinds: list[_KindDraw]


#: base32's alphabet (RFC 4648 section 6), as bytes to index with random numbers
_B32 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
#: NULL, as a 0-d object array for np.where
_NONE = np.array(None, dtype=object)


def _objects(values: Iterable[Any]) -> np.ndarray:
    """A 1-D object array (numpy would make a fixed-width unicode array of str values)."""
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@dataclass
class _Chunk:
    """One chunk, ready for the writer: the rows (a serialized SQLite database, or binary COPY
    streams for PostgreSQL) and what the writer reports."""

    payload: bytes | tuple[bytes, bytes]
    holders: int
    certificates: int
    revoked: int
    last_seq: int
    partitions: list[tuple[int, str]]


#: the columns a generator binds into its staged database; the writer's INSERT ... SELECT makes
#: the others from these and from table ``k`` (:data:`_SELECT`), one bound value fewer each
_STAGE = {
    "h": ("id", "name", "date_of_birth", "gender", "address", "municipality", "card_expiry", "state", "created_at"),
    "c": ("kind", "serial", "holder_id", "municipality", "subject_cn", "not_before", "not_after", "revoked_at",
          "reason", "status_seq", "seed_key"),
}
_ZEROS = "0" * 300
#: what the writer selects from the staged tables, in HOLDER_COLUMNS and CERT_COLUMNS order
_SELECT = {
    "h": {**{c: c for c in _STAGE["h"]},
          "name_flags": f"substr('{_ZEROS}', 1, length(name))",
          "address_flags": f"substr('{_ZEROS}', 1, length(address))",
          "updated_at": "(SELECT now FROM stage.k)"},
    "c": {**{c: c for c in _STAGE["c"]},
          "ca_id": f"CASE kind WHEN '{_SIGN}' THEN (SELECT sign_id FROM stage.k) "
                   "ELSE (SELECT auth_id FROM stage.k) END",
          "status": f"CASE WHEN reason IS NULL THEN '{_GOOD}' ELSE '{_REVOKED}' END",
          "issued_at": "not_before"},
}


def _staged(holders: list[np.ndarray], certs: list[np.ndarray], constants: tuple[str, int, int]) -> bytes:
    """The rows as a serialized in-memory SQLite database (tables ``h`` and ``c``, and ``k``
    with ``constants``: now, the two issuers' ids): binding the values happens here, in the
    generator process, and the writer copies them with one ``INSERT ... SELECT`` a table, in C
    (measured: 1.6 microseconds a record against 4.8 for ``executemany`` in the writer).
    Columns the writer can make (the flags, constant times and ids, the status) are not bound:
    binding was most of a generator's time."""
    con = sqlite3.connect(":memory:")
    try:
        for name, cols, names in (("h", holders, HOLDER_COLUMNS), ("c", certs, CERT_COLUMNS)):
            staged = [cols[names.index(c)] for c in _STAGE[name]]
            con.execute(f"CREATE TABLE {name} ({','.join(_STAGE[name])})")
            con.executemany(f"INSERT INTO {name} VALUES ({','.join('?' * len(staged))})",
                            zip(*(c.tolist() for c in staged), strict=True))
        con.execute("CREATE TABLE k (now, sign_id, auth_id)")
        con.execute("INSERT INTO k VALUES (?, ?, ?)", constants)
        con.commit()
        return con.serialize()
    finally:
        con.close()


_GEN: list[_Generator] = []


def _generate(job: tuple[int, int, int]) -> _Chunk:
    """One chunk, in a generator process (``_GEN`` was set before the fork) or in the writer."""
    index, first_holder, size = job
    gen = _GEN[0]
    d = gen.draw(index, first_holder, size)
    payload = gen.binary(d) if gen.pg else _staged(*gen.text(d), (gen.now_s, gen.ca_ids[Kind.SIGN],
                                                                   gen.ca_ids[Kind.AUTH]))
    seqs = np.concatenate([k.seq for k in d.kinds])
    revoked = int(np.count_nonzero(seqs))
    pairs = sorted({(gen.ca_ids[k.kind], str(code)) for k in d.kinds for code in gen.codes.str[np.unique(d.m[k.rows])]})
    return _Chunk(payload, size, len(seqs), revoked, int(seqs.max()) if revoked else 0, pairs)


def _in_order(pool: Any, jobs: list[tuple[int, int, int]], window: int) -> Iterator[_Chunk]:
    """Each job's chunk, in order, with at most ``window`` chunks generated ahead of the writer:
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

    ``workers``: processes generating rows while this one writes them (default: the cores, at
    most two; 0: generate here); each chunk has its own random stream, so a given
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
    id_first = writer.reserve_ids(cur, 2 * n) if writer.pg else None
    cur.close()
    writer.conn.commit()
    writer.defer_indexes()
    _GEN[:] = [_Generator(rt, seed, key_ids, first_holder, serials, seq_first, id_first)]
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    totals = [0, 0, 0]  # holders, certificates, revoked
    bar = tqdm(total=n, unit="holder", desc="seeding records", disable=not progress, smoothing=0.1)
    pool = mp.get_context("fork").Pool(workers) if workers > 0 else None
    try:
        jobs = [(i, first_holder + i * CHUNK, min(CHUNK, n - i * CHUNK)) for i in range(-(-n // CHUNK))]
        # One writer: on SQLite there is only one; on PostgreSQL a second COPY stream (every
        # other chunk on another connection) was no faster here (23.0 records per RSA signature
        # of the same moment against 22.8): two cores are already busy with the generators and
        # the one server process.
        for chunk in _in_order(pool, jobs, 2 * workers + 1):
            writer.write(chunk)
            if chunk.revoked and rt.epoch is not None:
                # Responders learn of the new revocations as of any other (ca.revocation).
                rt.epoch.publish(chunk.last_seq)
            totals[0] += chunk.holders
            totals[1] += chunk.certificates
            totals[2] += chunk.revoked
            bar.update(chunk.holders)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        _GEN.clear()
        writer.finish()
    return SeedResult(totals[0], totals[1], totals[2], time.perf_counter() - started)


__all__ = ["CERT_COLUMNS", "HOLDER_COLUMNS", "seed_records"]
