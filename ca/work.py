"""One unit of work: every authority operation is one transaction, and the revocations it
made become visible to the responders only after that transaction committed.

The revocation sequence is published on the shared epoch (:mod:`jpki_mock.epoch`) *after*
the commit, so once an operation has returned no responder answers "good" for a certificate
it revoked; and an operation that fails midway publishes nothing and leaves the store as it
was (:meth:`jpki_mock.db.Store.session` rolls back).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType

from sqlalchemy.orm import Session

from jpki_mock.db import Store
from jpki_mock.epoch import RevocationEpoch


class UnitOfWork:
    """``with UnitOfWork(store, epoch) as work:`` -> ``work.session`` for every write of the operation."""

    def __init__(self, store: Store, epoch: RevocationEpoch | None):
        self._store = store
        self._epoch = epoch
        self._transaction: AbstractContextManager[Session] | None = None
        self._session: Session | None = None
        #: the highest revocation sequence value this unit used; published after the commit
        self.revocation_seq: int | None = None

    @property
    def session(self) -> Session:
        """The transaction's session (only between ``__enter__`` and ``__exit__``)."""
        if self._session is None:
            raise RuntimeError("a unit of work's session exists only inside its `with` block")
        return self._session

    def revoked(self, seq: int) -> None:
        self.revocation_seq = seq if self.revocation_seq is None else max(self.revocation_seq, seq)

    def __enter__(self) -> UnitOfWork:
        if self._transaction is not None:
            raise RuntimeError("a unit of work is entered once")
        self._transaction = self._store.session()
        self._session = self._transaction.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._transaction is not None
        self._transaction.__exit__(exc_type, exc, tb)  # commit, or roll back and re-raise
        if exc_type is None and self.revocation_seq and self._epoch is not None:
            self._epoch.publish(self.revocation_seq)


#: what the concern objects call to start one: ``with begin() as work``
Begin = Callable[[], UnitOfWork]
