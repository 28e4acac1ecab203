"""Database engine, sessions and schema for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, String, TypeDecorator, create_engine, event, make_url, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeEngine

from jpki_mock.clock import UTC
from jpki_mock.errors import NotInitialised, StorageError
from jpki_mock.private import ensure_private_file


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
    return create_engine(url, pool_pre_ping=True, **kwargs)


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

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def create_schema(self) -> None:
        init_schema(self.engine)

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
        try:
            # A data directory is initialised once the authority created its first CA generation.
            with self._sessions() as s:
                return s.execute(text("SELECT 1 FROM ca_generations LIMIT 1")).first() is not None
        except (OperationalError, ProgrammingError):  # no such table yet
            return False

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
        raise StorageError(f"cannot reserve {name} values: {exc.orig}") from None
