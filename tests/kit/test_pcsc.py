"""The private pcscd's reader configuration and process bookkeeping (no pcscd started here;
tests/kit/test_card_reader.py runs the real one)."""

from __future__ import annotations

import re
import subprocess
import sys

from jpki_mock.kit import pcsc


def test_reader_config_lists_vpcd_in_its_listening_mode_two_slots_per_entry():
    text = pcsc.reader_config(36000, 3)
    entries = re.findall(r'FRIENDLYNAME "(.*?)"\nDEVICENAME +(\S+)\nLIBPATH +(\S+)\nCHANNELID +(\d+)', text)
    # slots 0-1 from the first entry (ports 36000, 36001), slot 2 from the second (36002)
    assert entries == [
        (pcsc.READER_NAME, "/dev/null:36000", str(pcsc.VPCD_DRIVER), "36000"),
        (pcsc.READER_NAME, "/dev/null:36002", str(pcsc.VPCD_DRIVER), "36002"),
    ]


def test_alive_and_terminate_by_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert pcsc.alive(proc.pid)
    pcsc.terminate(proc.pid, grace=5)  # reaps its own child on the way (waitpid)
    assert not pcsc.alive(proc.pid)
    proc.wait(timeout=5)
