"""Read ahead from the database in a thread while the writer encodes.

SQLite (and psycopg) release the GIL while the database engine works, so on a 2-core machine
fetching the next batch overlaps with encoding the current one.  The queue holds at most
``depth`` batches: memory stays bounded by the batch size, not the number of entries.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class _Done:
    """The producer's end-of-items marker (a class of its own, so the consumer can tell it
    apart from a batch or an error by type)."""


_DONE = _Done()


def prefetched(items: Iterable[T], batch: int = 20_000, depth: int = 2) -> Iterator[T]:
    q: queue.Queue[list[T] | _Done | BaseException] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: list[T] | _Done | BaseException) -> bool:
        while not stop.is_set():
            try:
                q.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            chunk: list[T] = []
            for item in items:
                chunk.append(item)
                if len(chunk) >= batch:
                    if not put(chunk):
                        return
                    chunk = []
            if chunk and not put(chunk):
                return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="crl-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            got = q.get()
            if isinstance(got, _Done):
                return
            if isinstance(got, BaseException):
                raise got
            yield from got
    finally:
        stop.set()  # the consumer stopped early (an error while writing): let the producer finish
        thread.join()
