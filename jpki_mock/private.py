"""Files that hold secrets, private to their owner from the first byte.

The SQLite database (encrypted CA keys, admin token hashes, holders' personal data), its
``-wal``/``-shm`` files, PKCS#12 files, the admin token and the configuration file with the key
passphrase are created with mode 0600, never written first and tightened later: a file
created 0644 and chmod-ed afterwards is readable by anyone for that moment.  The data
directory is 0700.  SQLite creates the WAL and shared-memory files with the permissions of the
database file itself (its unix VFS copies them), so creating that file 0600 covers all three.
"""

from __future__ import annotations

import os
from pathlib import Path

#: owner read/write only
FILE_MODE = 0o600
#: owner only
DIR_MODE = 0o700


def private_dir(path: Path | str) -> Path:
    """``path`` as a directory only its owner can enter (created if missing, tightened if not)."""
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077 and path.stat().st_uid == os.geteuid():
        path.chmod(DIR_MODE)
    return path


def ensure_private_file(path: Path | str) -> Path:
    """Create ``path`` empty with mode 0600 if it does not exist; tighten it (and any SQLite
    ``-wal``/``-shm`` beside it) if it exists with wider permissions."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        # Never open (and so close) an existing database file: closing any descriptor of a
        # file drops every POSIX lock the process holds on it, SQLite's own included, and a
        # process whose locks vanished sees another one checkpoint and delete the WAL under
        # it ("database disk image is malformed"; sqlite.org/howtocorrupt.html, section 2.2).
        # `serve --init` opens the database twice in one process.
        if path.stat().st_mode & 0o077:
            path.chmod(FILE_MODE)
    else:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.chmod(FILE_MODE)
    return path


def write_private(path: Path | str, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (a 0600 temporary file, fsync, rename), so the
    file is complete and private whenever it exists under its name."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
