"""The data directory: what jpki-mock creates in it, the lock every server holds on it, and
starting over (``jpki-mock reset``).

A server (``jpki-mock serve``, ``jpki-mock ocsp serve``) holds a shared ``flock`` on
``<data_dir>/server.lock`` for as long as it runs; the kernel drops the lock when the process
ends, however it ends, so a stale lock cannot outlive a crash.  ``reset`` asks for the lock
exclusively without waiting: it gets it only when no server is running on the directory.

``reset`` removes only the entries jpki-mock itself creates (:data:`CREATED`), and only in a
directory it recognises as a data directory (a database, revocation epoch or admin token of
its own); anything else in the directory makes it refuse, naming what it found, so a data
directory pointed by mistake at a home or project directory is never emptied.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from jpki_mock.errors import Conflict, InvalidInput

LOCK_NAME = "server.lock"

#: every entry jpki-mock creates in a data directory, and what it is
CREATED: dict[str, str] = {
    "jpki.db": "the SQLite database (holders, certificates, encrypted CA and card keys, tokens, counters)",
    "jpki.db-wal": "SQLite's write-ahead log",
    "jpki.db-shm": "SQLite's shared-memory index",
    "jpki.db-journal": "SQLite's rollback journal",
    "admin-token": "the admin API token written by init",
    "crl": "published CRLs and their archive",
    "revocation.epoch": "the revocation counter the servers share",
    "time-travel.json": "the time-travel clock offset",
    "scenarios": "the scenario catalog's own CA (jpki-mock scenarios build)",
    "reports": "load-test reports written into the data directory",
    "console-session.key": "the key that signs the web console's session cookies",
    "cards": "the virtual card reader's card processes: logs and APDU traces (jpki-mock card insert)",
    "pcsc": "the private pcscd of the virtual card reader (jpki-mock card reader start)",
    LOCK_NAME: "the lock running servers hold",
}
#: created by init but kept by reset: the user's settings (and the key passphrase, which
#: protects nothing once the keys are gone and is reused by the next init)
KEPT = ("config.toml",)
#: entries only jpki-mock makes: one of them marks a directory as a data directory
MARKERS = ("jpki.db", "revocation.epoch", "admin-token", LOCK_NAME)


def hold_server_lock(data_dir: Path | str) -> int:
    """Take the shared server lock of ``data_dir`` for the life of this process; returns the
    file descriptor, which must stay open (closing it releases the lock)."""
    fd = os.open(Path(data_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def server_running(data_dir: Path | str) -> bool:
    """Whether a server holds ``data_dir``'s lock now."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the lock if it was taken
    return False


@dataclass
class ResetPlan:
    """What :func:`plan_reset` found: the entries to remove and those kept."""

    data_dir: Path
    remove: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [f"  remove {p.name}{'/' if p.is_dir() else ''}: {CREATED[p.name]}" for p in self.remove]
        lines += [f"  keep   {p.name}: your settings (delete it yourself to start from the defaults)"
                  for p in self.kept]
        return lines


def plan_reset(data_dir: Path | str) -> ResetPlan:
    """The entries ``jpki-mock reset`` would remove from ``data_dir``; refuses a directory that
    is not recognisably a data directory, holds anything jpki-mock did not create, or has a
    server running on it."""
    root = Path(data_dir)
    plan = ResetPlan(root)
    if not root.exists():
        return plan
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a directory", field="data_dir")
    names = {p.name for p in root.iterdir()}
    if not names & set(MARKERS):
        raise InvalidInput(f"{root} is not a jpki-mock data directory (none of {', '.join(MARKERS)} in it): "
                           "not touching it", field="data_dir", allowed="the JPKI_MOCK_DATA of an instance")
    if server_running(root):
        raise Conflict(f"a server is running on {root} (it holds {root / LOCK_NAME}): stop it first",
                       field="data_dir")
    foreign = sorted(names - set(CREATED) - set(KEPT))
    if foreign:
        raise InvalidInput(f"{root} holds entries jpki-mock did not create ({', '.join(foreign)}): not touching it",
                           field="data_dir", allowed="move them elsewhere first")
    plan.remove = [root / n for n in CREATED if n in names and n != LOCK_NAME]
    plan.kept = [root / n for n in KEPT if n in names]
    return plan


def remove(plan: ResetPlan) -> None:
    """Remove the plan's entries, holding the server lock exclusively meanwhile (a server
    starting now waits for it, one started since :func:`plan_reset` makes this refuse)."""
    if not plan.data_dir.is_dir():
        return
    fd = os.open(plan.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"a server started on {plan.data_dir}: stop it first", field="data_dir") from None
        for path in plan.remove:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    finally:
        os.close(fd)
