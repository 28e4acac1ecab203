"""How every process learns that something it caches changed: revocations, and the removal of
a relying party.

Two sequence numbers move: the revocation sequence (``ca.status``'s ``revocation_seq``
counter: each revocation takes the next value) and the access sequence (:data:`ACCESS_SEQ`:
each removal of a relying party or revocation of an admin token takes the next value).  A
process compares the number with the one its caches were filled at, before trusting them, and
on a change asks the store what changed (or drops the cache).  Where the number is read:

* **One host**: :class:`RevocationEpoch`, a memory-mapped file ``<data_dir>/revocation.epoch``
  (slot 0 the revocation sequence, slot 1 the access sequence).  The writer publishes after its
  commit; a reader reads 8 bytes per request (no system call, no database round trip).
* **Several hosts on PostgreSQL** (``ocsp.revocation_check = "database-push"``): the writing
  transaction sends ``NOTIFY jpki_revocation, '<seq>'`` (or ``jpki_access``), which PostgreSQL
  delivers to every listener when, and only if, the transaction commits.  Each process runs
  one :class:`SequenceListener` thread that ``LISTEN``\\ s on a connection of its own and
  raises an in-memory cell the request path reads like the mmap slot; a poll every second (and
  one after every reconnection) catches a notification missed while the connection was down.
  A revoking process returns once its own listener heard its notification
  (:func:`await_delivery`).  PostgreSQL wakes each listening session on its own, so a
  responder may hear of a change a few milliseconds after the revoke returned (docs/ocsp.md,
  "Propagation"); ``ocsp.revocation_check = "database"`` (the default for several hosts) reads
  the counter on every request instead, which closes that window at a round trip per request.
* **SQLite without a shared data directory**: the counter itself is read (:class:`CallCell`),
  a local file read.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import sys
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from select import select as _readable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from jpki_mock.db import Counter, Store, libpq_url

log = logging.getLogger("jpki_mock.epoch")

_FMT = struct.Struct("<Q")

#: the counter removals of relying parties and revocations of admin tokens draw from
ACCESS_SEQ = "access_seq"
#: the counter revocations draw from (named by its owner, ``ca.status.REVOCATION_SEQ``; the
#: kernel imports no part, so the name is repeated here and a test holds the two equal)
REVOCATION_SEQ = "revocation_seq"
#: PostgreSQL notification channels (payload: the sequence number as decimal text)
REVOCATION_CHANNEL = "jpki_revocation"
ACCESS_CHANNEL = "jpki_access"
#: epoch file slots
REVOCATION_SLOT = 0
ACCESS_SLOT = 1


class CallCell(Sequence[int]):
    """A one-item sequence whose item is what ``read`` returns when asked: the same shape as
    :meth:`RevocationEpoch.cell` for another source of a sequence number."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], int]):
        self.read = read

    def __getitem__(self, index: int) -> int:  # type: ignore[override]  # item 0 only, no slices
        if index != 0:
            raise IndexError(index)
        return self.read()

    def __len__(self) -> int:
        return 1


class _SlotCell(Sequence[int]):
    """Item 0 is slot ``slot`` of a map (big-endian hosts, where a cast view would misread)."""

    __slots__ = ("_epoch", "_slot")

    def __init__(self, epoch: RevocationEpoch, slot: int):
        self._epoch = epoch
        self._slot = slot

    def __getitem__(self, index: int) -> int:  # type: ignore[override]  # item 0 only, no slices
        if index != 0:
            raise IndexError(index)
        return self._epoch.read(self._slot)

    def __len__(self) -> int:
        return 1


class RevocationEpoch:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < mmap.PAGESIZE:
                os.ftruncate(fd, mmap.PAGESIZE)
            self._map = mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._views: list[memoryview] = []

    def read(self, slot: int = REVOCATION_SLOT) -> int:
        value: int = _FMT.unpack_from(self._map, slot * _FMT.size)[0]
        return value

    def cell(self, slot: int = REVOCATION_SLOT) -> Sequence[int]:
        """Slot ``slot`` as item 0 of a sequence, for a caller that reads it on every request: on
        a little-endian host a memoryview over the map, whose ``[0]`` costs no Python-level call
        (about 45 ns against 105 for a bound call in process; the OCSP hot path reads it per
        request)."""
        if sys.byteorder != "little":
            return _SlotCell(self, slot)
        offset = slot * _FMT.size  # the map starts on a page boundary: aligned
        view = memoryview(self._map)[offset:offset + _FMT.size].cast("Q")
        self._views.append(view)
        return view

    def access_cell(self) -> Sequence[int]:
        return self.cell(ACCESS_SLOT)

    def publish(self, seq: int, slot: int = REVOCATION_SLOT) -> None:
        """Raise slot ``slot`` to ``seq`` (never lower it: a reader that saw the higher value
        must not see it go back; writers draw from a counter whose row lock orders them)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if seq > self.read(slot):
                _FMT.pack_into(self._map, slot * _FMT.size, seq)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def publish_access(self, seq: int) -> None:
        self.publish(seq, ACCESS_SLOT)

    def close(self) -> None:
        for view in self._views:
            view.release()  # a map with views exported cannot be closed
        self._map.close()
        os.close(self._fd)


def notify(session: Session, channel: str, seq: int) -> None:
    """Queue ``NOTIFY channel, 'seq'`` in ``session``'s transaction (PostgreSQL; nothing on
    SQLite).  PostgreSQL delivers it to every listener at commit and drops it on rollback, so a
    listener never hears of a change that did not happen, nor misses one that did while its
    connection was up."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": str(seq)})


def read_counter(store: Store, name: str) -> int:
    with store.engine.connect() as conn:
        value = conn.execute(select(Counter.value).where(Counter.name == name)).scalar()
    return int(value or 0)


class _PushedCell(Sequence[int]):
    """Item 0: a channel's sequence number as :class:`SequenceListener` last heard it, checked at
    request time: if the listening connection has bytes the listener thread has not applied yet
    (a notification that reached this host while the thread waits for the GIL or the CPU), the
    counters are read from the database instead, so a request answered after a notification
    arrived sees it.  Costs one ``select`` with a zero timeout per read (about a microsecond)."""

    __slots__ = ("_cell", "_listener")

    def __init__(self, listener: SequenceListener, cell: array[int]):
        self._listener = listener
        self._cell = cell

    def __getitem__(self, index: int) -> int:  # type: ignore[override]  # item 0 only, no slices
        if index != 0:
            raise IndexError(index)
        listener = self._listener
        fd = listener.fd
        if fd >= 0:
            try:
                pending = listener.busy or bool(_readable((fd,), (), (), 0)[0])
            except (OSError, ValueError):  # the connection was closed meanwhile
                pending = False
            if pending:
                listener.catch_up()
        return self._cell[0]

    def __len__(self) -> int:
        return 1


class SequenceListener:
    """One per process and PostgreSQL database: a daemon thread that keeps one in-memory cell
    per channel (item 0: the sequence number, read by the request path as it would the mmap)
    up to date from ``LISTEN`` notifications, with a poll of the counters every
    ``poll_seconds`` as a safety net and on every (re)connection.  While the database is
    unreachable it retries with exponential backoff (``0.05`` s doubling to ``5`` s); the cells
    keep their last value meanwhile (nothing can be revoked while the database is down)."""

    def __init__(self, store: Store, counters: dict[str, str], poll_seconds: float = 1.0):
        url = make_url(store.url)
        if url.get_backend_name() != "postgresql":
            raise ValueError("LISTEN/NOTIFY needs PostgreSQL")
        #: the psycopg connection string
        self._conninfo = libpq_url(store.url)
        self._counters = dict(counters)  # channel -> counter name
        self._names = {name: channel for channel, name in self._counters.items()}
        self.poll_seconds = poll_seconds
        self._cells = {channel: array("q", [0]) for channel in self._counters}
        self._raising = threading.Condition()
        self._store = store
        #: the listening connection's socket while it is up, else -1
        self.fd = -1
        #: True while the thread reads and applies what arrived on it
        self.busy = False
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # close() wakes the thread's wait through it
        #: True while the LISTEN connection is up (for /readyz and the tests)
        self.connected = threading.Event()
        self.notifications = 0
        # The first values synchronously, so a cache built right after this starts from them.
        with store.engine.connect() as conn:
            rows = conn.execute(select(Counter.name, Counter.value).where(Counter.name.in_(list(self._names))))
            for name, value in rows:
                self._cells[self._names[name]][0] = int(value)
        self._thread = threading.Thread(target=self._run, name="jpki-sequence-listener", daemon=True)
        self._thread.start()

    def cell(self, channel: str) -> Sequence[int]:
        return _PushedCell(self, self._cells[channel])

    def _raise(self, channel: str, seq: int) -> None:
        cell = self._cells.get(channel)
        # Raising, never lowering, keeps a reader's view monotonic; the lock keeps a slower
        # writer (catch_up in a request thread) from putting a lower value back.
        if cell is not None and seq > cell[0]:
            with self._raising:
                if seq > cell[0]:
                    cell[0] = seq
                    self._raising.notify_all()

    def wait_for(self, channel: str, seq: int, timeout: float) -> bool:
        """Wait until ``channel``'s number reached ``seq`` (at most ``timeout`` seconds): in a
        revoking process, until its own notification came back from PostgreSQL, which the
        database signals to every listening session at the same moment."""
        cell = self._cells[channel]
        with self._raising:
            return self._raising.wait_for(lambda: cell[0] >= seq, timeout)

    def catch_up(self) -> None:
        """Read the counters now (a request thread, when a notification is waiting unread)."""
        try:
            with self._store.engine.connect() as conn:
                rows = conn.execute(select(Counter.name, Counter.value).where(Counter.name.in_(list(self._names))))
                for name, value in rows:
                    self._raise(self._names[name], int(value))
        except Exception:  # the listener thread reconnects; the caller keeps the cell
            log.debug("catching up on the sequence failed", exc_info=True)

    def _poll(self, conn: Any) -> None:
        rows = conn.execute("SELECT name, value FROM counters WHERE name = ANY(%s)", [list(self._names)]).fetchall()
        for name, value in rows:
            self._raise(self._names[name], int(value))

    def _apply(self, conn: Any, poll: bool) -> None:
        """Apply what arrived (and, with ``poll``, the counters themselves) with ``busy`` set,
        so a request thread catches up meanwhile rather than trust the cell."""
        self.busy = True
        try:
            if poll:
                self._poll(conn)  # may read notifications too: psycopg keeps them for notifies()
            for note in conn.notifies(timeout=0):
                try:
                    self._raise(note.channel, int(note.payload))
                except ValueError:
                    continue  # not ours: NOTIFY is open to every role
                self.notifications += 1
        finally:
            self.busy = False

    def _run(self) -> None:
        import psycopg  # the PostgreSQL driver the store uses; only a PostgreSQL store gets here

        backoff = 0.05
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5,
                                     application_name="jpki-sequence-listener") as conn:
                    for channel in self._counters:
                        conn.execute(f"LISTEN {channel}")  # channel names are our constants
                    fd = self.fd = conn.pgconn.socket
                    # after LISTEN: a change committed from here on is either notified or polled
                    self._apply(conn, poll=True)
                    self.connected.set()
                    backoff = 0.05
                    next_poll = time.monotonic() + self.poll_seconds
                    while not self._stop.is_set():
                        wait = max(0.0, next_poll - time.monotonic())
                        # Our own wait (GIL released) rather than psycopg's, so that ``busy`` is
                        # set before the bytes are read: a request thread that finds the socket
                        # empty and ``busy`` unset knows the cell holds all that reached us.
                        ready = _readable((fd, self._wake_r), (), (), wait)[0]
                        if self._wake_r in ready:
                            break
                        poll = time.monotonic() >= next_poll
                        if ready or poll:
                            self._apply(conn, poll)
                        if poll:
                            next_poll = time.monotonic() + self.poll_seconds
            except Exception as exc:  # any failure of the connection: reconnect
                self.fd = -1
                if self.connected.is_set():
                    log.warning("sequence listener lost the database (%s); reconnecting", exc.__class__.__name__)
                self.connected.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.fd = -1
        self.connected.clear()

    def close(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")  # out of its wait at once
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            os.close(self._wake_r)
            os.close(self._wake_w)


_listeners: dict[tuple[int, str], SequenceListener] = {}
_listeners_lock = threading.Lock()


def listener_for(store: Store) -> SequenceListener:
    """This process's listener for ``store``'s database, following both sequences (one thread
    per process and database, whatever asks: the OCSP responder, the CRL endpoint's access
    control).  Keyed by process id too: a forked worker starts its own."""
    key = (os.getpid(), store.url)
    with _listeners_lock:
        listener = _listeners.get(key)
        if listener is None or not listener._thread.is_alive():
            listener = _listeners[key] = SequenceListener(
                store, {REVOCATION_CHANNEL: REVOCATION_SEQ, ACCESS_CHANNEL: ACCESS_SEQ})
        return listener


def access_cell(store: Store, epoch: RevocationEpoch | None, read: bool = False) -> Sequence[int]:
    """Item 0: the access sequence, from the host's epoch file when given (the processes share
    a data directory), else from the database: notified on PostgreSQL, read each time on SQLite
    or with ``read``."""
    if epoch is not None:
        return epoch.access_cell()
    if read or store.is_sqlite:
        return CallCell(lambda: read_counter(store, ACCESS_SEQ))
    return listener_for(store).cell(ACCESS_CHANNEL)


def await_delivery(store: Store, channel: str, seq: int, timeout: float = 0.25) -> bool:
    """After a commit that notified ``seq`` on ``channel``: return once this process's own
    listener heard it, at most ``timeout`` seconds later (PostgreSQL; at once on SQLite).
    PostgreSQL signals every listening session at the commit, so waiting for our own copy means
    the responders' copies have left the database too before the caller learns that the
    operation returned.  It waits on the database, never on the responders."""
    if store.is_sqlite:
        return True
    return listener_for(store).wait_for(channel, seq, timeout)


def close_listener(store: Store) -> None:
    """Stop this process's listener for ``store``'s database, if one runs (a runtime closing)."""
    with _listeners_lock:
        listener = _listeners.pop((os.getpid(), store.url), None)
    if listener is not None:
        listener.close()
