"""A holder's software card in a virtual PC/SC reader: ``jpki-mock card insert / remove``.

:class:`StoredCard` is the card's persistent side for :func:`jpki_mock.kit.apdu.process`,
read from and written to the same tables the REST API and CLI use (through
:class:`~jpki_mock.kit.card.CardService`): a wrong PIN over APDUs costs the stored try, an
operator's ``card unlock`` restores it, a ``card reset`` replaces the key the card signs with.
:class:`ChipCard` adds the volatile session and vpcd's power events (:mod:`.vpcd`).

``card insert`` runs the card in a process of its own (``card insert --foreground``), with a
state file in ``<data_dir>/cards/<port>.json`` naming its PID, so that ``card remove`` stops
exactly that process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_mock.errors import Conflict, InvalidInput, NotFound
from jpki_mock.kit import apdu
from jpki_mock.kit.card import MAX_TRIES, CardService, PinLocked, WrongPin
from jpki_mock.kit.pcsc import alive, terminate
from jpki_mock.kit.vpcd import LOOPBACK, Slot

#: vpcd's default port (vsmartcard vpcd.h VPCDPORT); reader slot k of a configuration listens
#: at base + k [S, VPCD]
DEFAULT_PORT = 35963
#: how long ``card insert`` waits for its card process to listen
START_TIMEOUT = 30.0
#: the line the card process prints once it serves vpcd's slot
READY = "card is in the vpcd slot at"


class StoredCard:
    """:class:`jpki_mock.kit.apdu.CardPort` over the software card of one holder."""

    def __init__(self, service: CardService, holder_id: int):
        self.service = service
        self.holder_id = holder_id

    def has_key(self, kind: str) -> bool:
        card = self.service.state(self.holder_id).card
        return (card.sign_key if kind == "sign" else card.auth_key) is not None

    def tries_left(self, kind: str) -> int:
        return int(getattr(self.service.state(self.holder_id).card, f"{kind}_tries"))

    def verify(self, kind: str, pin: str) -> apdu.Verification:
        try:
            key, cert = self.service.verify(self.holder_id, kind, pin)
        except WrongPin as err:
            return apdu.Verification(None, None, int(err.data["tries_left"]))
        except PinLocked:
            return apdu.Verification(None, None, 0, blocked=True)
        return apdu.Verification(key, cert.id, MAX_TRIES[kind])

    def certificate(self, kind: str, ca: bool) -> bytes:
        row = self.service.state(self.holder_id).certificates[kind]
        if ca:
            return bytes(self.service.authority.issuer_by_id(row.ca_id).der)
        return self.service.authority.der_of(row)

    def current_cert_id(self, kind: str) -> int:
        return int(self.service.state(self.holder_id).certificates[kind].id)

    def sign(self, verified: apdu.Verified, digest_info: bytes) -> bytes:
        key = verified.key
        assert isinstance(key, rsa.RSAPrivateKey)  # StoredCard.verify stores the opened RSA key
        return raw_pkcs1_sign(key, digest_info)


def raw_pkcs1_sign(key: rsa.RSAPrivateKey, digest_info: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 signature primitive over an already encoded DigestInfo: the card
    pads (EMSA-PKCS1-v1_5, RFC 8017 section 9.2 step 5) and applies RSASP1 (section 5.2.1,
    with the CRT).  The card does not parse the DigestInfo: the client chose the hash [S, OPENSC:
    SC_ALGORITHM_RSA_HASH_NONE]."""
    numbers = key.private_numbers()
    k = (key.key_size + 7) // 8
    if len(digest_info) > k - 11:
        raise InvalidInput("longer than the key allows", field="digest_info", allowed=f"at most {k - 11} bytes")
    em = b"\x00\x01" + b"\xff" * (k - 3 - len(digest_info)) + b"\x00" + digest_info
    m = int.from_bytes(em, "big")
    p, q = numbers.p, numbers.q
    s1, s2 = pow(m, numbers.dmp1, p), pow(m, numbers.dmq1, q)
    s = s2 + q * ((numbers.iqmp * (s1 - s2)) % p)
    return s.to_bytes(k, "big")


def _hex(data: bytes) -> str:
    return data.hex(" ").upper()


def redact(command: bytes) -> str:
    """A command APDU for the trace, with a VERIFY's PIN masked."""
    if len(command) > 5 and command[1] == apdu.INS_VERIFY:
        return _hex(command[:5]) + " " + " ".join("**" for _ in command[5:])
    return _hex(command)


class ChipCard:
    """:class:`jpki_mock.kit.vpcd.VirtualCard`: the JPKI-AP with its session."""

    def __init__(self, port: apdu.CardPort, trace: Callable[[str], None] | None = None):
        self.port = port
        self.session = apdu.Session()
        self.trace = trace
        self._lock = threading.Lock()

    def power_on(self) -> None:
        self._clear("power on")

    def power_off(self) -> None:
        self._clear("power off")

    def reset(self) -> None:
        self._clear("reset")

    def _clear(self, event: str) -> None:
        with self._lock:
            self.session = apdu.Session()
        if self.trace:
            self.trace(f"-- {event}")

    def atr(self) -> bytes:
        return apdu.ATR

    def transmit(self, command: bytes) -> bytes:
        with self._lock:
            try:
                response, self.session = apdu.process(self.port, self.session, command)
            except Exception:  # a store error must not take the card out of the reader
                traceback.print_exc()
                response = apdu.respond(apdu.SW_UNKNOWN)
        if self.trace:
            self.trace(f"> {redact(command)}")
            self.trace(f"< {_hex(response)}")
        return response


# ---------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Inserted:
    holder: int
    port: int
    pid: int
    log: str


def cards_dir(data_dir: Path) -> Path:
    return data_dir / "cards"


def _state_file(data_dir: Path, port: int) -> Path:
    return cards_dir(data_dir) / f"{port}.json"


def inserted(data_dir: Path) -> list[Inserted]:
    """The cards whose processes are running (stale state files are dropped)."""
    out = []
    for path in sorted(cards_dir(data_dir).glob("*.json")):
        entry = Inserted(**json.loads(path.read_text()))
        if alive(entry.pid):
            out.append(entry)
        else:
            path.unlink(missing_ok=True)
    return out


def insert(data_dir: Path, holder: int, port: int, reader_dir: Path | None, env: dict[str, str] | None = None,
           trace: bool = False) -> Inserted:
    """Start ``card insert --foreground`` for ``holder`` on ``port`` of the private pcscd in
    ``reader_dir`` (None: the system's vpcd) and wait until the card is up."""
    for entry in inserted(data_dir):
        if entry.port == port:
            raise Conflict(f"reader port {port} already holds holder {entry.holder}'s card", field="port",
                           allowed="`jpki-mock card remove` it first, or choose another --port")
    cards_dir(data_dir).mkdir(parents=True, exist_ok=True)
    log = cards_dir(data_dir) / f"{port}.log"
    command = [sys.executable, "-m", "jpki_mock.cli", "card", "insert", str(holder), "--port", str(port),
               "--foreground"] + (["--trace"] if trace else []) + \
              (["--reader-dir", str(reader_dir)] if reader_dir is not None else ["--system"])
    start = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as fh:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    entry = Inserted(holder, port, proc.pid, str(log))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Conflict(f"the card process exited ({proc.returncode}): {log.read_text()[start:][-2000:]}",
                           field="port")
        if READY in log.read_bytes()[start:].decode(errors="replace"):
            _state_file(data_dir, port).write_text(json.dumps(entry.__dict__))
            return entry
        time.sleep(0.1)
    terminate(proc.pid)
    raise Conflict(f"the card process did not start within {START_TIMEOUT:.0f} s", field="port")


def remove(data_dir: Path, *, holder: int | None = None, port: int | None = None) -> list[Inserted]:
    """Stop the card processes on ``port`` or holding ``holder``'s card (by their PIDs)."""
    chosen = [e for e in inserted(data_dir)
              if (port is None or e.port == port) and (holder is None or e.holder == holder)]
    if not chosen:
        what = f"port {port}" if port is not None else f"holder {holder}" if holder is not None else "any reader"
        raise NotFound(f"no card is inserted in {what}", field="port" if port is not None else "holder")
    for entry in chosen:
        terminate(entry.pid)
        _state_file(data_dir, entry.port).unlink(missing_ok=True)
    return chosen


def run_foreground(service: CardService, holder: int, port: int, netns: Path | None, trace: bool,
                   echo: Callable[[str], None]) -> None:
    """The card process: serve until SIGTERM / SIGINT, then close the socket (card removed)."""
    service.state(holder)  # fail here, before connecting, if the holder has no card
    card = ChipCard(StoredCard(service, holder), trace=echo if trace else None)
    slot = Slot(card, port, netns).start()
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    echo(f"holder {holder}'s {READY} {LOOPBACK}:{port} (pid {os.getpid()})")
    while not stop.wait(0.5):
        pass
    slot.stop()
    echo("card removed")
