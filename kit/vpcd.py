"""The card side of vsmartcard's vpcd socket protocol (docs/sources.md section 8 [S, VPCD]).

pcscd loads vpcd (``libifdvpcd.so``) as a reader driver; vpcd and the virtual card exchange
frames on one TCP connection: a 2-byte big-endian length, then the message.  A 1-byte
message is a control message from the reader (``00`` power off, ``01`` power on, ``02``
reset, ``04`` get ATR: only the ATR is answered); anything longer is a command APDU,
answered by the response APDU in a frame of its own.

vpcd listens on its port (on every interface: it binds INADDR_ANY) and the card connects to
it.  vpcd's other mode, where vpcd connects to a listening card, aborts pcscd in the
vsmartcard 0.8 that Debian 12 ships (``vicc_connect`` tests ``server_sock`` for non-zero, so
``FD_SET(-1)`` once the card is away; fixed upstream in commit 76543ea) [S, VPCD].  So the
private pcscd (:mod:`.pcsc`) runs in a network namespace of its own that has nothing but
loopback, and the card creates its socket in that namespace (:func:`connect`): vpcd's port
exists only there, never on the host's interfaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from pathlib import Path
from typing import Protocol

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0x00, 0x01, 0x02, 0x04
LOOPBACK = "127.0.0.1"
CLONE_NEWNET = 0x40000000  # setns(2): join a network namespace
#: how often a card not yet (or no longer) connected tries vpcd's port again
RETRY_SECONDS = 0.2


class VirtualCard(Protocol):
    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def atr(self) -> bytes: ...

    def transmit(self, apdu: bytes) -> bytes: ...


def socket_in(netns: Path | None) -> socket.socket:
    """A TCP socket created in the network namespace ``netns`` (``/proc/PID/ns/net``), or in
    ours.  A socket keeps the namespace it was made in, so only its creation needs setns(2),
    and only in the calling thread, which returns to its own namespace at once."""
    if netns is None:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net", "rb") as own, open(netns, "rb") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot enter the reader's network namespace {netns}: {os.strerror(err)}")
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            if libc.setns(own.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "cannot return to the card's own network namespace")


def connect(port: int, netns: Path | None = None) -> socket.socket | None:
    """A connection to vpcd's slot on 127.0.0.1:``port``, or None while nothing listens there."""
    sock = socket_in(netns)
    try:
        sock.connect((LOOPBACK, port))
    except OSError:
        sock.close()
        return None
    return sock


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        chunk = conn.recv(size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def frame(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


def handle(conn: socket.socket, card: VirtualCard) -> None:
    """Serve one vpcd connection until the reader closes it."""
    while True:
        header = _recv_exact(conn, 2)
        if header is None:
            return
        message = _recv_exact(conn, int.from_bytes(header, "big"))
        if message is None:
            return
        if len(message) == 1:
            code = message[0]
            if code == CTRL_ATR:
                conn.sendall(frame(card.atr()))
            elif code == CTRL_ON:
                card.power_on()
            elif code == CTRL_OFF:
                card.power_off()
            elif code == CTRL_RESET:
                card.reset()
            continue
        conn.sendall(frame(card.transmit(message)))


class Slot:
    """One card in one vpcd reader slot: the connection to vpcd and the thread serving it."""

    def __init__(self, card: VirtualCard, port: int, netns: Path | None = None):
        self.card = card
        self.port = port
        self.netns = netns
        self._stop = threading.Event()
        self._conn: socket.socket | None = None
        self._thread = threading.Thread(target=self.serve, name=f"vpcd-card-{port}", daemon=True)

    def start(self) -> Slot:
        if self.netns is not None:
            socket_in(self.netns).close()  # fail now, in the caller, if the namespace cannot be entered
        self._thread.start()
        return self

    def serve(self) -> None:
        """Connect to vpcd and serve it; connect again when the connection drops (pcscd
        restarted), until :meth:`stop`.  Each connection starts with the card powered off."""
        while not self._stop.is_set():
            conn = connect(self.port, self.netns)
            if conn is None:
                self._stop.wait(RETRY_SECONDS)
                continue
            with conn:
                self._conn = conn
                if self._stop.is_set():
                    break
                self.card.power_off()
                with contextlib.suppress(OSError):
                    handle(conn, self.card)
                self._conn = None

    def wait(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        """Take the card out: vpcd sees the connection close and reports the card removed."""
        self._stop.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
