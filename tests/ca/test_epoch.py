"""The revocation epoch shared through a memory-mapped file (ca/epoch.py)."""

from __future__ import annotations

import struct

import pytest

from jpki_mock.epoch import CallCell, RevocationEpoch


def test_cell_sees_what_any_process_publishes(tmp_path):
    path = tmp_path / "revocation.epoch"
    mine, theirs = RevocationEpoch(path), RevocationEpoch(path)  # two maps of one file, as two processes
    try:
        cell = mine.cell()
        assert cell[0] == mine.read() == 0
        theirs.publish(7)
        assert cell[0] == mine.read() == 7
        theirs.publish(3)  # concurrent revokers finish out of order: the epoch never goes back
        assert cell[0] == 7
        mine.publish(2**40 + 5)
        assert cell[0] == theirs.read() == 2**40 + 5
        # the file holds it as 8 little-endian octets, whatever reads it
        assert struct.unpack("<Q", path.read_bytes()[:8])[0] == 2**40 + 5
    finally:
        mine.close()  # with a reader's view released first: a map with views cannot close
        theirs.close()


def test_call_cell_reads_on_every_access():
    values = iter([4, 9])
    cell = CallCell(lambda: next(values))
    assert (cell[0], cell[0], len(cell)) == (4, 9, 1)
    with pytest.raises(IndexError):
        cell[1]
