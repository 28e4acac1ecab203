"""A private pcscd with vpcd readers: ``jpki-mock card reader start / stop``.

pcsc-lite 1.9 (Debian 12) binds its client socket and PID file at compile-time paths under
``/run/pcscd``; only the clients honour ``PCSCLITE_CSOCK_NAME`` [S, PCSCLITE: winscard_msg.c
getSocketName, pcscdaemon.c].  To run a pcscd of our own beside (or without) the system's, it
starts in private namespaces (``unshare``):

- a mount namespace where a directory of ours is bound over ``/run``: its socket is
  ``<dir>/run/pcscd/pcscd.comm`` for every client that sets ``PCSCLITE_CSOCK_NAME`` to it, and
  the system's ``/run/pcscd`` is never touched;
- a network namespace with only loopback, because vpcd listens on every interface
  (:mod:`.vpcd` explains why we cannot use its connecting mode): its ports exist only there,
  the card joins that namespace to connect, and several private pcscds never collide on ports.

``-c`` points pcscd at our reader configuration instead of ``/etc/reader.conf.d``.  Each
configuration entry is one vpcd reader with two slots (vsmartcard's default VPCDSLOTS), slot
``s`` at port ``PORT + s``; entries are listed two ports apart, so reader ``k`` (in pcscd's
order) is the card connected to ``base + k`` [S, VPCD].
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from jpki_mock.errors import ConfigError, Conflict, NotFound

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER_NAME = "jpki-mock vpcd"
#: slots per vpcd reader entry (vsmartcard configure.ac --enable-vpcdslots default) [S, VPCD]
SLOTS_PER_ENTRY = 2
START_TIMEOUT = 30.0


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def terminate(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``pid`` still runs after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def reader_config(base_port: int, readers: int, driver: Path = VPCD_DRIVER) -> str:
    """pcscd's reader.conf text (reader.conf(5)) for ``readers`` slots from ``base_port``."""
    entries = []
    for first in range(0, readers, SLOTS_PER_ENTRY):
        port = base_port + first
        # /dev/null:PORT is vpcd's listening mode (ifd-vpcd.c IFDHCreateChannelByName)
        entries.append(f'FRIENDLYNAME "{READER_NAME}"\nDEVICENAME   /dev/null:{port}\n'
                       f"LIBPATH      {driver}\nCHANNELID    {port}\n")
    return "\n".join(entries)


@dataclass(frozen=True)
class Pcscd:
    """A running private pcscd: its directory, PID and the socket clients must use."""

    directory: str
    pid: int
    base_port: int
    readers: int

    @property
    def socket(self) -> Path:
        return Path(self.directory) / "run" / "pcscd" / "pcscd.comm"

    @property
    def env(self) -> dict[str, str]:
        return {"PCSCLITE_CSOCK_NAME": str(self.socket)}

    @property
    def netns(self) -> Path:
        """pcscd's network namespace, where vpcd's ports are."""
        return Path(f"/proc/{self.pid}/ns/net")

    @property
    def log(self) -> Path:
        return Path(self.directory) / "pcscd.log"


def _namespace_command() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise ConfigError("`unshare` (util-linux) is needed to run a private pcscd", field="unshare")
    if os.geteuid() != 0:
        # The card process must enter pcscd's network namespace (setns(2)), which needs
        # CAP_SYS_ADMIN over it; an unprivileged user namespace would not give us that from outside.
        raise ConfigError("a private pcscd needs root (private mount and network namespaces)", field="user",
                          allowed="run as root (as CI does), or use the system pcscd with vpcd's own "
                                  "configuration and `jpki-mock card insert --system`")
    return [unshare, "--mount", "--net", "--propagation", "private", "--"]


def start(directory: Path, base_port: int, readers: int = 2, apdu_log: bool = False) -> Pcscd:
    """Start ``pcscd -f`` privately in ``directory`` and wait for its socket."""
    pcscd = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None)
    if pcscd is None or not VPCD_DRIVER.exists():
        raise ConfigError("pcscd and vsmartcard's vpcd are needed", field="pcscd",
                          allowed="apt-get install pcscd vsmartcard-vpcd")
    directory = directory.resolve()
    conf = directory / "reader.conf.d"
    run = directory / "run"
    for path in (conf, run):
        path.mkdir(parents=True, exist_ok=True)
    (conf / "jpki-mock").write_text(reader_config(base_port, readers))
    sock = run / "pcscd" / "pcscd.comm"
    state = directory / "pcscd.json"
    if state.exists() and alive(json.loads(state.read_text())["pid"]):
        raise Conflict(f"a pcscd already runs in {directory}", field="directory",
                       allowed="`jpki-mock card reader stop` first")
    # left by a pcscd that was killed: pcscd itself would refuse to start next to it
    sock.unlink(missing_ok=True)
    (run / "pcscd" / "pcscd.pid").unlink(missing_ok=True)
    args = [pcscd, "--foreground", "--config", str(conf)] + (["--apdu", "--debug"] if apdu_log else [])
    ip = shutil.which("ip") or "/usr/sbin/ip"
    script = '"$1" link set lo up && mount --bind "$2" /run && shift 2 && exec "$@"'
    log = directory / "pcscd.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([*_namespace_command(), "sh", "-c", script, "sh", ip, str(run), *args],
                                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    daemon = Pcscd(str(directory), proc.pid, base_port, readers)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"pcscd exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}",
                              field="pcscd")
        if sock.exists():
            (directory / "pcscd.json").write_text(json.dumps(daemon.__dict__))
            return daemon
        time.sleep(0.1)
    stop(daemon)
    raise ConfigError(f"pcscd did not create {sock} within {START_TIMEOUT:.0f} s", field="pcscd")


def running(directory: Path) -> Pcscd:
    state = directory.resolve() / "pcscd.json"
    if not state.exists():
        raise NotFound(f"no private pcscd was started in {directory}", field="directory",
                       allowed="`jpki-mock card reader start`")
    return Pcscd(**json.loads(state.read_text()))


def stop(daemon: Pcscd) -> None:
    """SIGTERM to pcscd's PID (it removes its socket), SIGKILL if it lingers."""
    terminate(daemon.pid)
    (Path(daemon.directory) / "pcscd.json").unlink(missing_ok=True)
    daemon.socket.unlink(missing_ok=True)
