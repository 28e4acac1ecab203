"""Stopping the processes a benchmark starts: by PID, children first, bounded in time."""

from __future__ import annotations

import os
import signal
import time


def stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, ...), or None when gone.

    The command name sits in parentheses and may itself contain spaces and parentheses."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2:].split()


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(int(entry))
            if fields is not None and int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def ancestors(pid: int | None = None) -> set[int]:
    """``pid`` (default: this process) and every process above it."""
    pids, pid = set(), pid or os.getpid()
    while pid > 1:
        pids.add(pid)
        fields = stat_fields(pid)
        if fields is None:
            break
        pid = int(fields[1])
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_tree(proc, grace: float = 3.0) -> None:
    """Stop a process that may have forked workers: children first (``openssl ocsp -multi``'s
    parent ignores SIGTERM while children run), then the parent; SIGKILL after ``grace``."""
    if proc.poll() is not None:
        return
    kids = children_of(proc.pid)
    for pid in kids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (proc.poll() is None or any(_alive(k) for k in kids)):
        time.sleep(0.05)
    for pid in kids + children_of(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its living descendants, from /proc (clock ticks)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        fields = stat_fields(p)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
            todo += children_of(p)
    return total / os.sysconf("SC_CLK_TCK")
