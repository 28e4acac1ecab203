"""The processes a load run or a benchmark starts: the ``jpki-mock`` command line, children in
their own session stopped by PID (children first, bounded in time), their CPU time from /proc.

One module for both the Locust runner (:mod:`jpki_mock.loadtest.runner`) and the benchmark
harness (:mod:`jpki_mock.loadtest.bench`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path


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
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (proc.poll() is None or any(_alive(k) for k in kids)):
        time.sleep(0.05)
    for pid in kids + children_of(proc.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
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


def jpki_command(*args: str) -> list[str]:
    """The argv of ``jpki-mock ARGS`` run by this Python (no reliance on PATH)."""
    return [sys.executable, "-m", "jpki_mock.cli", *args]


class CommandFailed(RuntimeError):
    """A ``jpki-mock`` command exited non-zero; the message carries its stderr's end."""


def run_jpki(env: dict[str, str], *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run ``jpki-mock ARGS`` to completion; :class:`CommandFailed` with its stderr if it fails."""
    done = subprocess.run(jpki_command(*args), env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise CommandFailed(f"`jpki-mock {' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A child in its own session, its output in ``log``, stopped (SIGTERM, then SIGKILL) by
    process group id."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]):
        self.args = args
        self.log = log
        self.fh = open(log, "wb")  # noqa: SIM115 - the child writes to it until stop() closes it
        self.proc = subprocess.Popen(args, stdout=self.fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 15.0) -> None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                if self.wait(wait) is not None:
                    break
        self.fh.close()
