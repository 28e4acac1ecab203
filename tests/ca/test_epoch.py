"""The revocation epoch shared through a memory-mapped file (ca/epoch.py)."""

from __future__ import annotations

import struct

from ca.epoch import RevocationEpoch


def test_reader_sees_what_any_process_publishes(tmp_path):
    path = tmp_path / "revocation.epoch"
    mine, theirs = RevocationEpoch(path), RevocationEpoch(path)  # two maps of one file, as two processes
    try:
        read = mine.reader()
        assert read() == mine.read() == 0
        theirs.publish(7)
        assert read() == mine.read() == 7
        theirs.publish(3)  # concurrent revokers finish out of order: the epoch never goes back
        assert read() == 7
        mine.publish(2**40 + 5)
        assert read() == theirs.read() == 2**40 + 5
        # the file holds it as 8 little-endian octets, whatever reads it
        assert struct.unpack("<Q", path.read_bytes()[:8])[0] == 2**40 + 5
    finally:
        mine.close()  # with a reader's view released first: a map with views cannot close
        theirs.close()
