"""The audit log: every admin mutation, who asked for it and how it ended, kept in the database.

One place records it for every way in (the admin API, ``jpki-mock``, any later console): the
operations themselves.  Each operation that changes the mock's state is declared with
:func:`operation` (the authority's concerns, the registry of tokens and relying parties, the
CRL publisher, the travelling clock, the software card, the scenario builder); the edges only
say who is acting (:func:`enter` / :func:`acting`: the admin API with ``token:<label>``,
``jpki-mock`` with ``cli:<user>``).  Code running with nobody acting (the server's CRL
schedule, tests calling the authority directly) records nothing.

An operation's row is written in the same transaction as its change: the first transaction
that writes while the operation runs gets the row before it commits (SQLAlchemy's
``before_commit``), so a change that rolls back leaves no row and a committed change always has
one.  An operation that fails writes one row with the error's code (``invalid_input``,
``conflict``, ...) in a transaction of its own, after its change rolled back; one that changes
nothing in the database (the clock's offset lives in a file) writes its ``ok`` row after it
returns.  An operation made of several transactions (seeding, building the scenario catalog,
publishing several CRLs) is recorded with the first; should it fail after that, a second row
records the failure.  Operations called by an operation (a renewal issues certificates) are
part of it, not rows of their own.

Times: ``at`` is the mock's clock (the travelling clock when time travel is on,
docs/time-travel.md), ``wall_at`` the real time; filters use the real time.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import inspect
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Integer, String, event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from jpki_mock.clock import Clock
from jpki_mock.db import Base, Store, UTCDateTime, outage_reason
from jpki_mock.errors import JpkiError

log = logging.getLogger("jpki_mock.audit")

OK = "ok"
#: longest stored target and detail (the columns' sizes); longer text is cut with "..."
MAX_TARGET = 256
MAX_DETAIL = 500
#: the most rows one read returns (``--limit``, ``?limit=``)
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class AuditEntry(Base):
    """One admin mutation, or one attempt refused (``result`` is then the error's code)."""

    __tablename__ = "audit_log"

    # BIGINT on PostgreSQL; SQLite auto-increments only an INTEGER PRIMARY KEY
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    #: the mock's clock (travelling when time travel is on)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the real time (what --since filters on)
    wall_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: ``token:<label>`` (admin API) or ``cli:<user>`` (jpki-mock)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(MAX_TARGET))
    #: ``ok``, or the error's code (jpki_mock.errors)
    result: Mapped[str] = mapped_column(String(64))
    #: the error's message ("" when ok)
    detail: Mapped[str] = mapped_column(String(MAX_DETAIL))

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "time": _iso(self.wall_at), "clock": _iso(self.at), "actor": self.actor,
                "action": self.action, "target": self.target, "result": self.result, "detail": self.detail}


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clean(text: Any, limit: int) -> str:
    """``text`` as one storable line of at most ``limit`` characters: control characters (a
    newline would forge a line of ``jpki-mock audit``) and lone surrogates become ``?``."""
    out = _CONTROL.sub("?", str(text))
    return out if len(out) <= limit else out[:limit - 3] + "..."


class _Action:
    """The operation in progress: its name and target, and whether its row is committed."""

    __slots__ = ("done", "name", "target")

    def __init__(self, name: str, target: str):
        self.name = name
        self.target = target
        self.done = False


@dataclass
class Scope:
    """Who is acting, and where their rows go: one per admin request or CLI command."""

    actor: str
    store: Store | None = None
    clock: Clock | None = None
    #: the outermost operation running now
    current: _Action | None = None
    #: rows this scope wrote (the admin API records a refused request that reached none)
    recorded: int = 0

    def entry(self, action: str, target: str, result: str, detail: str) -> AuditEntry:
        wall = datetime.now(UTC)
        return AuditEntry(at=self.clock.now() if self.clock is not None else wall, wall_at=wall, actor=self.actor,
                          action=clean(action, 64), target=clean(target, MAX_TARGET), result=clean(result, 64),
                          detail=clean(detail, MAX_DETAIL))

    def write(self, action: str, target: str, result: str, detail: str = "") -> None:
        """A row in a transaction of its own (a failure, or a change outside the database).
        Never raises: the answer to the caller is what matters, and a database that cannot
        take the row is logged."""
        if self.store is None:
            log.warning("no store to record %s %s (%s) in the audit log", action, target, result)
            return
        try:
            with self.store.session() as s:
                ensure_table(s)
                s.add(self.entry(action, target, result, detail))
        except Exception as exc:  # never instead of the caller's answer
            if not isinstance(exc, SQLAlchemyError) or self._initialised():
                log.warning("could not record %s %s (%s) in the audit log: %s", action, target, result,
                            outage_reason(exc) or exc)
            return
        self.recorded += 1

    def _initialised(self) -> bool:
        try:
            return self.store is not None and self.store.is_initialised()
        except JpkiError:
            return True


_scope: ContextVar[Scope | None] = ContextVar("jpki_mock_audit_scope", default=None)


def enter(actor: str, store: Store | None = None, clock: Clock | None = None) -> Token[Scope | None]:
    """Start acting as ``actor`` in this context (an edge: one admin request); :func:`leave` ends it."""
    return _scope.set(Scope(actor, store, clock))


def leave(token: Token[Scope | None] | None) -> None:
    if token is not None:
        _scope.reset(token)


@contextlib.contextmanager
def acting(actor: str, store: Store | None = None, clock: Clock | None = None) -> Iterator[Scope]:
    """``with acting("cli:alice"):`` operations inside are recorded as ``alice``'s (unless an
    outer edge is already acting: the outermost wins)."""
    outer = _scope.get()
    if outer is not None:
        yield outer
        return
    token = enter(actor, store, clock)
    try:
        scope = _scope.get()
        assert scope is not None
        yield scope
    finally:
        leave(token)


def scope() -> Scope | None:
    """The scope of whoever is acting in this context, or None."""
    return _scope.get()


def bind(store: Store, clock: Clock) -> None:
    """Where the acting scope's rows go, when its edge did not say (a CLI command opens its
    runtime after it started acting): the first store bound wins."""
    current = _scope.get()
    if current is not None and current.store is None:
        current.store, current.clock = store, clock


def cli_actor() -> str:
    """``cli:<login name>`` of the user running ``jpki-mock``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment nor in the password database
        user = "unknown"
    return f"cli:{user}"


def note(target: str) -> None:
    """The running operation learned its target (a new holder's id), before its row is written."""
    current = _scope.get()
    if current is not None and current.current is not None:
        current.current.target = target


Naming = str | Callable[[Mapping[str, Any]], str]
F = TypeVar("F", bound=Callable[..., Any])


def _render(naming: Naming, args: Mapping[str, Any]) -> str:
    if callable(naming):
        try:
            return naming(args)
        except (KeyError, TypeError, ValueError, AttributeError):
            return "?"
    try:
        return naming.format_map(args)
    except (KeyError, IndexError, AttributeError, ValueError):
        return naming


def result_of(exc: BaseException) -> tuple[str, str]:
    """(result, detail) of an operation that raised ``exc``."""
    if isinstance(exc, JpkiError):
        return exc.code, str(exc)
    reason = outage_reason(exc)
    if reason is not None:
        return "storage_unavailable", reason
    if isinstance(exc, Exception):
        return "internal_error", type(exc).__name__
    return "interrupted", type(exc).__name__


def operation(name: Naming, target: Naming = "") -> Callable[[F], F]:
    """Declare a mutating operation: ``name`` (``cert.revoke``) and ``target`` are format strings
    over its arguments (``"{issuer_ref}/{serial}"``) or functions of the arguments' dict."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def audited(*args: Any, **kwargs: Any) -> Any:
            current = _scope.get()
            if current is None or current.current is not None:
                return fn(*args, **kwargs)  # nobody acting, or part of an outer operation
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return fn(*args, **kwargs)  # raises the call's own TypeError
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.update(arguments.pop("kwargs", None) or {})
            act = _Action(_render(name, arguments), _render(target, arguments))
            current.current = act
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                current.current = None
                code, detail = result_of(exc)
                current.write(act.name, act.target, code, detail)
                raise
            current.current = None
            if not act.done:  # changed nothing in the database (or not through a session)
                current.write(act.name, act.target, OK)
            return result

        return audited  # type: ignore[return-value]

    return decorate


# ------------------------------------------------------------------ the row in the same transaction
#: the engines whose database is known to have the audit table (checked once per process)
_HAS_TABLE: set[str] = set()


def ensure_table(session: Session) -> None:
    """A data directory initialised before the audit log existed gains its table with its
    first audited change (in that change's transaction: DDL is transactional in SQLite and
    PostgreSQL); one catalog read per process and database."""
    connection = session.connection()
    url = str(connection.engine.url)
    if url in _HAS_TABLE:
        return
    AuditEntry.__table__.create(connection, checkfirst=True)  # type: ignore[attr-defined]
    _HAS_TABLE.add(url)


_WROTE = "jpki_mock.audit.wrote"
_ATTACHED = "jpki_mock.audit.attached"


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    # UPDATE ... / INSERT ... statements run through the session write without a flush
    if (state.is_update or state.is_insert or state.is_delete) and _scope.get() is not None:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    current = _scope.get()
    act = current.current if current is not None else None
    if act is None or act.done or _ATTACHED in session.info:
        return
    if not (session.info.get(_WROTE) or session.new or session.dirty or session.deleted):
        return  # a read: the row waits for the transaction that changes something
    assert current is not None
    ensure_table(session)
    session.add(current.entry(act.name, act.target, OK, ""))
    session.info[_ATTACHED] = act


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    session.info.pop(_WROTE, None)
    act = session.info.pop(_ATTACHED, None)
    if act is not None:
        act.done = True
        current = _scope.get()
        if current is not None:
            current.recorded += 1


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WROTE, None)
    session.info.pop(_ATTACHED, None)


# ------------------------------------------------------------------ reading
def entries(store: Store, *, since: datetime | None = None, action: str | None = None,
            limit: int = DEFAULT_LIMIT, before: int | None = None) -> list[AuditEntry]:
    """The newest ``limit`` rows (newest first) at or after ``since`` (real time), whose action is
    ``action`` or starts with ``action.`` (``cert`` matches ``cert.revoke``), with an id below
    ``before`` (the next page)."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if since is not None:
        q = q.where(AuditEntry.wall_at >= since)
    if action:
        q = q.where((AuditEntry.action == action) | AuditEntry.action.startswith(action + ".", autoescape=True))
    if before is not None:
        q = q.where(AuditEntry.id < before)
    with store.session() as s:
        return list(s.scalars(q).all())


def text_line(e: AuditEntry) -> str:
    """One entry as ``jpki-mock audit`` prints it."""
    clock = "" if abs((e.at - e.wall_at).total_seconds()) < 1 else f" (clock {_iso(e.at)})"
    tail = f" {e.detail}" if e.detail else ""
    return f"{_iso(e.wall_at)}{clock} {e.actor} {e.action} {e.target or '-'} {e.result}{tail}"
