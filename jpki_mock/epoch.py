"""A revocation epoch shared by every process on this host through a memory-mapped file.

After a revocation commits, :meth:`RevocationEpoch.publish` writes the new revocation
sequence number into ``<data_dir>/revocation.epoch``.  A responder reads 8 bytes per
request (no system call, no database round trip) and, when the number moved, asks the
store which certificates changed (``StatusReader.changes_since``) and drops their
pre-signed responses.  Processes on other hosts poll the database instead.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

_FMT = struct.Struct("<Q")


class CallCell(Sequence[int]):
    """A one-item sequence whose item is what ``read`` returns when asked: the same shape as
    :meth:`RevocationEpoch.cell` for another source of the revocation sequence number."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], int]):
        self.read = read

    def __getitem__(self, index: int) -> int:  # type: ignore[override]  # item 0 only, no slices
        if index != 0:
            raise IndexError(index)
        return self.read()

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

    def read(self) -> int:
        value: int = _FMT.unpack_from(self._map, 0)[0]
        return value

    def cell(self) -> Sequence[int]:
        """The epoch as item 0 of a sequence, for a caller that reads it on every request: on a
        little-endian host a memoryview over the map, whose ``[0]`` costs no Python-level call
        (about 45 ns against 105 for a bound call in process; the OCSP hot path reads it per
        request)."""
        if sys.byteorder != "little":
            return CallCell(self.read)
        view = memoryview(self._map).cast("Q")  # the map starts on a page boundary: aligned
        self._views.append(view)
        return view

    def publish(self, seq: int) -> None:
        """Raise the epoch to ``seq`` (never lower it: concurrent revokers may finish out of order)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if seq > self.read():
                _FMT.pack_into(self._map, 0, seq)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        for view in self._views:
            view.release()  # a map with views exported cannot be closed
        self._map.close()
        os.close(self._fd)
