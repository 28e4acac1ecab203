"""Database engine, sessions and schema for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Index,
    String,
    TypeDecorator,
    create_engine,
    event,
    inspect,
    make_url,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import TypeEngine

from jpki_mock.clock import UTC
from jpki_mock.errors import ConfigError, JpkiError, NotInitialised, StorageError
from jpki_mock.private import ensure_private_file

log = logging.getLogger("jpki_mock.db")

#: seconds a PostgreSQL connection attempt may take: an unreachable host (a dropped packet,
#: not a refused connection) would otherwise hold a worker thread for the kernel's TCP timeout,
#: minutes, while an outage should be answered at once (tryLater, 503).
CONNECT_TIMEOUT = 5


class StoreUnavailable(StorageError):
    """The database cannot be reached (stopped, restarting, network): a temporary condition,
    answered 503 with Retry-After by the admin API and ``tryLater`` by the responder (RFC 6960
    section 2.3), never a bare 500."""

    code = "storage_unavailable"


UNREACHABLE = "the database is unreachable: "


def outage_reason(exc: BaseException) -> str | None:
    """A one-line reason when ``exc`` says the database is unreachable, None when it is
    something else (a bug, a constraint, bad input): only the former is answered as an outage.

    OperationalError is the DBAPI's class for "errors related to the database's operation, not
    necessarily under the control of the programmer" (PEP 249): refused or dropped connections,
    a server shutting down, a locked or unreadable SQLite file.  SQLite also raises it for a
    missing table, which is an uninitialised store, not an outage."""
    if isinstance(exc, StoreUnavailable):
        return exc.message.removeprefix(UNREACHABLE)
    if isinstance(exc, DBAPIError):
        if not (isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated):
            return None
        orig = exc.orig if exc.orig is not None else exc
        text_ = " ".join(str(orig).split()) or type(orig).__name__
        if isinstance(exc, OperationalError) and text_.startswith("no such "):
            return None
        return text_[:300]
    if isinstance(exc, (DisconnectionError, PoolTimeout)):
        return " ".join(str(exc).split())[:300]
    return None


def unavailable(reason: str) -> StoreUnavailable:
    """The error every part answers an outage with: it names the database."""
    return StoreUnavailable(UNREACHABLE + reason, field="database")


class Outage:
    """One process's record of a database outage, so that it is logged once when it starts and
    once when it ends (with how long it lasted and how many requests it failed), not a traceback
    per request.  It ends when a statement succeeds again (:class:`Store` listens).

    Attempts that started before the end may still fail just after it (a connection refused
    while PostgreSQL was starting up, reported after another thread's statement succeeded):
    failures within :attr:`SETTLE` seconds of the end are answered as an outage but open no new
    one, so a recovery is not logged as several outages.  A real new outage is logged at most
    that late."""

    SETTLE = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: time.monotonic() of the first failure, None while the database answers
        self.since: float | None = None
        self.failures = 0
        self.reason = ""
        #: time.monotonic() when the last outage ended
        self._ended = float("-inf")

    def report(self, reason: str, failed: int = 1) -> StoreUnavailable:
        """Count ``failed`` requests answered as an outage (0: only note that the database is
        down), logging the start of an outage once; returns the error to answer with."""
        with self._lock:
            if self.since is None:
                now = time.monotonic()
                if now - self._ended < self.SETTLE:
                    return unavailable(reason)
                self.since, self.reason, self.failures = now, reason, 0
                log.error("the database is unreachable (%s): answering 503 / tryLater until it is back", reason)
            self.failures += failed
        return unavailable(reason)

    def clear(self) -> None:
        """The database answered again: log the outage's summary, once."""
        with self._lock:
            if self.since is None:
                return
            self._ended = time.monotonic()
            lasted, failures = self._ended - self.since, self.failures
            self.since, self.failures = None, 0
        log.warning("the database is reachable again after %.1f s; %d requests were answered as an outage meanwhile",
                    lasted, failures)


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL ``url`` as psycopg (libpq) takes it: without SQLAlchemy's ``+driver``."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - exercised implicitly
            cur = dbapi_conn.cursor()
            # WAL: readers (responder workers) never block the writer (issuance, revocation).
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # pool_pre_ping: a pooled connection the server dropped (a restart) is replaced before use,
    # so the first request after an outage does not fail on a dead connection.
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if "connect_timeout" not in url else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


class _SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME with a one-call bind step.  ``isoformat(" ", "microseconds")`` of a naive
    datetime is exactly the stock storage format 'YYYY-MM-DD HH:MM:SS.ffffff', which the stock
    processor builds from a seven-key dict per value: a measurable share of bulk seeding.  Text
    comparisons in SQL (not_after < :now) depend on every row having that one format."""

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], str | None]:
        def process(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(" ", "microseconds")
        return process


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite has no time zones, PostgreSQL gets the same values."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            # SQLAlchemy leaves sqlite.DATETIME.__init__ unannotated.
            return dialect.type_descriptor(_SQLiteDateTime())  # type: ignore[no-untyped-call]
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Counter(Base):
    """Named monotonic counters: certificate serials per CA kind, the revocation sequence."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


def init_schema(engine: Engine) -> None:
    """Create every table declared on :class:`Base` so far: the composition root imports each
    part's ``models`` module before it opens a store, so that is every table."""
    Base.metadata.create_all(engine)


def schema_drift(engine: Engine) -> tuple[list[str], list[Index]]:
    """How the existing tables differ from the declared schema, read in one pass: (columns they
    lack or declare NOT NULL where the model is now nullable, declared indexes missing).
    ``create_all`` adds missing tables but never alters one, so a database made by an older
    jpki-mock would fail later, on some query; a bulk load drops indexes and builds them at its
    end (ca/bulkseed.py), so a load killed before then leaves them missing."""
    found = inspect(engine)
    present = set(found.get_table_names())
    outdated: list[str] = []
    missing: list[Index] = []
    for table in Base.metadata.sorted_tables:
        if table.name not in present:
            continue
        have = {c["name"]: c for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                outdated.append(f"{table.name}.{column.name} (missing)")
            elif column.nullable and not have[column.name]["nullable"]:
                outdated.append(f"{table.name}.{column.name} (NOT NULL, now nullable)")
        indexed = {i["name"] for i in found.get_indexes(table.name)}
        missing += [index for index in table.indexes if index.name not in indexed]
    return outdated, missing


class Store:
    """Engine + session factory for one database."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        database = make_url(url).database
        if url.startswith("sqlite") and database and database != ":memory:":
            # Encrypted CA keys, token hashes and personal data: 0600 before SQLite opens it, so
            # its -wal and -shm files are created 0600 too (jpki_mock.private).
            ensure_private_file(database)
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: this process's outage record: any part that meets an outage reports it here
        self.outage = Outage()
        outage = self.outage

        @event.listens_for(self.engine, "after_cursor_execute")
        def _answered(*_args: Any) -> None:
            # A statement succeeded: the outage (if any) is over.  One attribute read otherwise.
            if outage.since is not None:
                outage.clear()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def create_schema(self) -> None:
        init_schema(self.engine)

    def check_schema(self) -> None:
        """Refuse a database an older jpki-mock made (there are no migrations before 1.0), and
        build any declared index missing.  An unreachable database is not refused here: readiness
        and the outage handling report it."""
        try:
            outdated, missing = schema_drift(self.engine)
        except OperationalError:
            return
        if outdated:
            where = make_url(self.url).render_as_string(hide_password=True)
            raise ConfigError(
                f"the database {where} was made by an older jpki-mock: {', '.join(outdated)}; "
                "start over with `jpki-mock reset` (SQLite in the data directory) or give a new "
                "database (JPKI_MOCK_DATABASE_URL)")
        for index in missing:
            log.warning("building index %s: missing, probably left by an interrupted `jpki-mock seed --lazy`",
                        index.name)
            # IF NOT EXISTS: every server worker opens the store at once, and each may see it missing.
            with self.engine.begin() as conn:
                conn.execute(CreateIndex(index, if_not_exists=True))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error (no partial writes)."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def is_initialised(self) -> bool:
        """Whether the authority created its first CA generation here; raises StoreUnavailable
        when the database cannot be reached (an outage is not an empty store)."""
        try:
            with self._sessions() as s:
                return s.execute(text("SELECT 1 FROM ca_generations LIMIT 1")).first() is not None
        except (OperationalError, ProgrammingError) as exc:
            reason = outage_reason(exc)
            if reason is not None:
                raise self.outage.report(reason) from None
            return False  # no such table yet

    def readiness(self) -> JpkiError | None:
        """None when the database answers and a CA is initialised, else the error that says why
        (``/readyz``): one indexed read."""
        try:
            if self.is_initialised():
                return None
        except StoreUnavailable as exc:
            return exc
        except SQLAlchemyError as exc:
            return StorageError(f"the database failed: {' '.join(str(exc).split())[:300]}", field="database")
        return NotInitialised("no CA in this database yet: run `jpki-mock init` first", field="database")

    def require_initialised(self) -> None:
        if not self.is_initialised():
            raise NotInitialised("no CA in this data directory yet: run `jpki-mock init` first")

    def dispose(self) -> None:
        self.engine.dispose()


def next_values(session: Session, name: str, count: int = 1, *, start: int) -> int:
    """Reserve ``count`` consecutive values of a counter; returns the first.  One UPDATE ... RETURNING,
    so concurrent issuers (several processes on PostgreSQL) never hand out the same serial.
    ``start``: the first value when the counter does not exist yet (each owner knows its range)."""
    try:
        row = session.execute(
            update(Counter).where(Counter.name == name).values(value=Counter.value + count).returning(Counter.value)
        ).first()
        if row is None:
            session.add(Counter(name=name, value=start + count - 1))
            session.flush()
            return start
        return row[0] - count + 1
    except OperationalError as exc:
        reason = outage_reason(exc)
        if reason is not None:
            raise unavailable(reason) from None
        raise StorageError(f"cannot reserve {name} values: {exc.orig}") from None
