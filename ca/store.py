"""Database engine, sessions and schema for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .errors import NotInitialised, StorageError
from .models import Base, CAGeneration, Counter

#: modules whose tables live on :class:`ca.models.Base`; imported before ``create_all``.
MODEL_MODULES = ["ca.models", "crl.models", "ocsp.models", "ca.card.models"]

SERIAL_START = 1_000_001  # end-entity serials look like running counters [I]


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised implicitly
            cur = dbapi_conn.cursor()
            # WAL: readers (responder workers) never block the writer (issuance, revocation).
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def init_schema(engine: Engine) -> None:
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name and not name.startswith(str(exc.name)):
                raise
    Base.metadata.create_all(engine)


class Store:
    """Engine + session factory for one database."""

    def __init__(self, url: str, **engine_kwargs):
        self.url = url
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
            with self._sessions() as s:
                return s.scalar(select(CAGeneration.id).limit(1)) is not None
        except OperationalError:
            return False
        except Exception:  # pragma: no cover - e.g. missing table on PostgreSQL
            return False

    def require_initialised(self) -> None:
        if not self.is_initialised():
            raise NotInitialised("no CA in this data directory yet: run `jpki-mock init` first")

    def dispose(self) -> None:
        self.engine.dispose()


def next_values(session: Session, name: str, count: int = 1, start: int = SERIAL_START) -> int:
    """Reserve ``count`` consecutive values of a counter; returns the first.  One UPDATE ... RETURNING,
    so concurrent issuers (several processes on PostgreSQL) never hand out the same serial."""
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
