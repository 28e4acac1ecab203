"""The JPKI card application (JPKI-AP) as a card answers it over APDUs.

:func:`process` is the whole interpreter: ``(card, session, command APDU) -> (response APDU,
new session)``.  The :class:`Session` is the card's volatile state (selected application and
file, PINs verified since the last selection of the application); it is immutable, so a
command that fails leaves the old one in force.  Everything persistent (try counters, the
sealed keys, the certificates) is behind the :class:`CardPort`, which :mod:`.reader` backs
with the same software card (``CardService``) the REST API and CLI use: a wrong PIN sent
here costs the same stored try.

The command set (docs/sources.md sections 5 and 8 [S, OPENSC, MYNA]): SELECT the application by its DF
name, SELECT an EF by file id (``00 A4 02 0C``), READ BINARY at an offset, VERIFY against
the selected PIN EF (``00 20 00 80``; without data it reports the tries left), and
COMPUTE DIGITAL SIGNATURE on the selected key EF (``80 2A 00 80`` + DigestInfo).  Status
words are ISO/IEC 7816-4's (section 5.6 of the 2020 edition, table 6).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

#: the JPKI application's DF name [S, OPENSC: jpki.h AID_JPKI]
JPKI_AID = bytes.fromhex("D392F000260100000001")
#: ATR of the My Number card in OpenSC's JPKI driver table (card-jpki.c jpki_atrs), so that
#: OpenSC picks the JPKI driver by ATR as it does for a real card [S, OPENSC].  T=1.
ATR = bytes.fromhex("3BE000FF8131FE4514")
#: EF 0006: a My Number card says ``JPKIAPICCTOKEN2`` (a Juki card ``JPKIAPICCTOKEN``, a
#: phone ``JPKIAPGPSETOKEN``), space padded to 32 bytes [S, MYNA]
TOKEN_INFO = b"JPKIAPICCTOKEN2".ljust(32, b" ")

# Elementary files of the JPKI-AP, by file id [S, OPENSC: jpki.h, pkcs15-jpki.c].
EF_SIGN_CERT, EF_SIGN_CA = 0x0001, 0x0002
EF_TOKEN = 0x0006
EF_AUTH_CERT, EF_AUTH_CA = 0x000A, 0x000B
EF_AUTH_KEY, EF_AUTH_PIN = 0x0017, 0x0018
EF_SIGN_KEY, EF_SIGN_PIN = 0x001A, 0x001B

#: certificate EFs -> (key kind, is the CA certificate)
CERT_FILES = {EF_SIGN_CERT: ("sign", False), EF_SIGN_CA: ("sign", True),
              EF_AUTH_CERT: ("auth", False), EF_AUTH_CA: ("auth", True)}
PIN_FILES = {EF_AUTH_PIN: "auth", EF_SIGN_PIN: "sign"}
KEY_FILES = {EF_AUTH_KEY: "auth", EF_SIGN_KEY: "sign"}
#: the PIN formats on the card (docs/sources.md section 5 [C]); a VERIFY outside them is
#: refused without costing a try [I]
PIN_LENGTHS = {"auth": (4, 4), "sign": (6, 16)}
PIN_CHARS = {"auth": re.compile(rb"[0-9]+"), "sign": re.compile(rb"[A-Z0-9]+")}
#: RSA-2048: a PKCS#1 v1.5 block holds at most k - 11 bytes of DigestInfo (RFC 8017 section 9.2)
MAX_DIGEST_INFO = 256 - 11

# ISO/IEC 7816-4 status words.
SW_OK = 0x9000
SW_END_OF_FILE = 0x6282            # fewer bytes than Le: the end of the EF came first
SW_WRONG_LENGTH = 0x6700
SW_INCOMPATIBLE_FILE = 0x6981      # command incompatible with file structure
SW_SECURITY = 0x6982               # security status not satisfied
SW_BLOCKED = 0x6983                # authentication method blocked
SW_REFERENCE_UNUSABLE = 0x6984     # reference data not usable
SW_CONDITIONS = 0x6985             # conditions of use not satisfied
SW_NO_CURRENT_EF = 0x6986          # command not allowed (no current EF)
SW_WRONG_DATA = 0x6A80             # incorrect parameters in the command data field
SW_FUNCTION = 0x6A81               # function not supported
SW_NOT_FOUND = 0x6A82              # file or application not found
SW_P1P2 = 0x6A86                   # incorrect parameters P1-P2
SW_REFERENCE_NOT_FOUND = 0x6A88    # referenced data not found
SW_OFFSET = 0x6B00                 # wrong parameters P1-P2 (offset outside the EF)
SW_INS = 0x6D00                    # instruction code not supported or invalid
SW_CLA = 0x6E00                    # class not supported
SW_UNKNOWN = 0x6F00                # no precise diagnosis

INS_SELECT, INS_READ_BINARY, INS_VERIFY, INS_SIGN = 0xA4, 0xB0, 0x20, 0x2A
#: the class byte each instruction is sent with: ISO interindustry (00) except the JPKI
#: signature command, which is proprietary (80) [S, OPENSC: jpki_compute_signature]
CLASSES = {INS_SELECT: 0x00, INS_READ_BINARY: 0x00, INS_VERIFY: 0x00, INS_SIGN: 0x80}


def tries_sw(tries: int) -> int:
    """``63Cx``: x further tries allowed (ISO/IEC 7816-4: a counter in the low nibble)."""
    return 0x63C0 | min(max(tries, 0), 15)


@dataclass(frozen=True)
class Command:
    """A parsed command APDU (ISO/IEC 7816-3 section 12.1: cases 1-4, short and extended)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes | None  # None: no command data field (Lc absent)
    le: int | None      # None: no Le field; Le 00 (short) is 256, 0000 (extended) 65536


class MalformedApdu(ValueError):
    """Lengths that do not add up: answered ``6700``."""


def parse(apdu: bytes) -> Command:
    if len(apdu) < 4:
        raise MalformedApdu("shorter than a header")
    cla, ins, p1, p2 = apdu[:4]
    body = apdu[4:]
    if not body:
        return Command(cla, ins, p1, p2, None, None)                            # case 1
    if len(body) == 1:
        return Command(cla, ins, p1, p2, None, body[0] or 256)                  # case 2S
    if body[0] != 0:
        lc = body[0]
        if len(body) == 1 + lc:
            return Command(cla, ins, p1, p2, body[1:], None)                    # case 3S
        if len(body) == 2 + lc:
            return Command(cla, ins, p1, p2, body[1:1 + lc], body[-1] or 256)   # case 4S
        raise MalformedApdu("Lc does not match the data")
    # extended length: 00 followed by two length bytes
    if len(body) == 3:
        return Command(cla, ins, p1, p2, None, int.from_bytes(body[1:3], "big") or 65536)  # case 2E
    if len(body) < 3:
        raise MalformedApdu("truncated extended length")
    lc = int.from_bytes(body[1:3], "big")
    if lc == 0:
        raise MalformedApdu("extended Lc of 0")
    if len(body) == 3 + lc:
        return Command(cla, ins, p1, p2, body[3:], None)                        # case 3E
    if len(body) == 5 + lc:
        return Command(cla, ins, p1, p2, body[3:3 + lc], int.from_bytes(body[-2:], "big") or 65536)  # case 4E
    raise MalformedApdu("extended Lc does not match the data")


@dataclass(frozen=True)
class Verified:
    """A PIN verified in this session: the key it opened, and the certificate it belongs to
    (a reset through the REST API or CLI replaces both, which ends the verification)."""

    key: object
    cert_id: int


@dataclass(frozen=True)
class Session:
    """The card's volatile state, cleared by power-on, reset and selecting the application."""

    in_ap: bool = False
    ef: int | None = None
    verified: Mapping[str, Verified] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Verification:
    """What the card's PIN check answered: the key opened (on success) and the tries left."""

    key: object | None
    cert_id: int | None
    tries_left: int
    blocked: bool = False


class CardPort(Protocol):
    """The persistent side of one card (see :mod:`.reader`)."""

    def has_key(self, kind: str) -> bool:
        """Whether the card holds this key (no signature key under 15)."""

    def tries_left(self, kind: str) -> int: ...

    def verify(self, kind: str, pin: str) -> Verification: ...

    def certificate(self, kind: str, ca: bool) -> bytes:
        """The DER certificate (or its CA's) that the EF holds."""

    def current_cert_id(self, kind: str) -> int: ...

    def sign(self, verified: Verified, digest_info: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with the opened key over an encoded DigestInfo."""


def respond(sw: int, data: bytes = b"") -> bytes:
    return data + sw.to_bytes(2, "big")


def process(card: CardPort, session: Session, apdu: bytes) -> tuple[bytes, Session]:
    """One command APDU in, the response APDU (data + SW1 SW2) and the next session out."""
    try:
        cmd = parse(apdu)
    except MalformedApdu:
        return respond(SW_WRONG_LENGTH), session
    if cmd.ins not in CLASSES:
        return respond(SW_INS if cmd.cla in (0x00, 0x80) else SW_CLA), session
    if cmd.cla != CLASSES[cmd.ins]:
        return respond(SW_CLA), session
    if cmd.ins == INS_SELECT:
        return _select(card, session, cmd)
    if cmd.ins == INS_READ_BINARY:
        return _read_binary(card, session, cmd), session
    if cmd.ins == INS_VERIFY:
        return _verify(card, session, cmd)
    return _sign(card, session, cmd), session


def _exists(card: CardPort, fid: int) -> bool:
    if fid in (EF_SIGN_CERT, EF_SIGN_KEY):
        # A card issued under 15 carries no signature certificate or key [C]; the password EF
        # stays (without reference data) so that a client's PIN listing still works [I].
        return card.has_key("sign")
    return fid == EF_TOKEN or fid in CERT_FILES or fid in KEY_FILES or fid in PIN_FILES


def _select(card: CardPort, session: Session, cmd: Command) -> tuple[bytes, Session]:
    if cmd.p2 not in (0x00, 0x0C):  # 0C: no response data, as the JPKI clients send it
        return respond(SW_P1P2), session
    if cmd.p1 == 0x04:  # by DF name
        if not cmd.data:
            return respond(SW_WRONG_LENGTH), session
        if cmd.data != JPKI_AID:
            return respond(SW_NOT_FOUND), session
        # Selecting the application resets its security status: OpenSC logs out this way
        # (card-jpki.c jpki_logout re-selects the AP) [S, OPENSC].
        return respond(SW_OK), Session(in_ap=True)
    if cmd.p1 == 0x00:  # MF: empty data or 3F00 (ISO/IEC 7816-4 section 11.2.2)
        if cmd.data not in (None, b"\x3f\x00"):
            return respond(SW_NOT_FOUND), session
        return respond(SW_OK), Session()
    if cmd.p1 == 0x02:  # EF under the current DF
        if cmd.data is None or len(cmd.data) != 2:
            return respond(SW_WRONG_LENGTH), session
        fid = int.from_bytes(cmd.data, "big")
        if not session.in_ap or not _exists(card, fid):
            return respond(SW_NOT_FOUND), session
        return respond(SW_OK), replace(session, ef=fid)
    return respond(SW_P1P2), session


def _read_binary(card: CardPort, session: Session, cmd: Command) -> bytes:
    if cmd.p1 & 0x80:  # short EF identifier in P1: not offered by the JPKI-AP [I]
        return respond(SW_FUNCTION)
    if cmd.data is not None or cmd.le is None:
        return respond(SW_WRONG_LENGTH)
    if session.ef is None:
        return respond(SW_NO_CURRENT_EF)
    if session.ef == EF_TOKEN:
        content = TOKEN_INFO
    elif session.ef in CERT_FILES:
        kind, ca = CERT_FILES[session.ef]
        # The signature certificate carries the basic four: it reads only after the signature
        # password (docs/sources.md section 5 [C]); the others read freely.
        if session.ef == EF_SIGN_CERT and not _still_verified(card, session, "sign"):
            return respond(SW_SECURITY)
        content = card.certificate(kind, ca)
    else:  # key and PIN EFs are internal: never read out
        return respond(SW_INCOMPATIBLE_FILE)
    offset = (cmd.p1 << 8) | cmd.p2
    if offset >= len(content):
        return respond(SW_OFFSET)
    chunk = content[offset:offset + cmd.le]
    return respond(SW_OK if len(chunk) == cmd.le else SW_END_OF_FILE, chunk)


def _still_verified(card: CardPort, session: Session, kind: str) -> bool:
    done = session.verified.get(kind)
    return done is not None and done.cert_id == card.current_cert_id(kind)


def _verify(card: CardPort, session: Session, cmd: Command) -> tuple[bytes, Session]:
    if cmd.p1 != 0x00:
        return respond(SW_P1P2), session
    if cmd.p2 != 0x80:  # 80: the reference data of the current EF [S, OPENSC]
        return respond(SW_REFERENCE_NOT_FOUND), session
    if cmd.le is not None:
        return respond(SW_WRONG_LENGTH), session
    if session.ef is None:
        return respond(SW_NO_CURRENT_EF), session
    kind = PIN_FILES.get(session.ef)
    if kind is None:
        return respond(SW_CONDITIONS), session
    if not card.has_key(kind):
        # No signature password was ever set on a card issued under 15 [I].
        return respond(tries_sw(0) if cmd.data is None else SW_REFERENCE_UNUSABLE), session
    if cmd.data is None:
        # No data: report the tries left, 63Cx, without using one.  Also after a successful
        # VERIFY: OpenSC's GET_INFO reads the counter this way and expects SW1 63 [S, OPENSC].
        return respond(tries_sw(card.tries_left(kind))), session
    low, high = PIN_LENGTHS[kind]
    if not low <= len(cmd.data) <= high:
        return respond(SW_WRONG_LENGTH), session
    if not PIN_CHARS[kind].fullmatch(cmd.data):
        return respond(SW_WRONG_DATA), session
    result = card.verify(kind, cmd.data.decode("ascii"))
    if result.blocked:
        return respond(SW_BLOCKED), _forget(session, kind)
    if result.key is None or result.cert_id is None:
        return respond(tries_sw(result.tries_left)), _forget(session, kind)
    verified = {**session.verified, kind: Verified(result.key, result.cert_id)}
    return respond(SW_OK), replace(session, verified=MappingProxyType(verified))


def _forget(session: Session, kind: str) -> Session:
    return replace(session, verified=MappingProxyType({k: v for k, v in session.verified.items() if k != kind}))


def _sign(card: CardPort, session: Session, cmd: Command) -> bytes:
    if (cmd.p1, cmd.p2) != (0x00, 0x80):
        return respond(SW_P1P2)
    if not cmd.data or len(cmd.data) > MAX_DIGEST_INFO:
        return respond(SW_WRONG_LENGTH)
    if session.ef is None:
        return respond(SW_NO_CURRENT_EF)
    kind = KEY_FILES.get(session.ef)
    if kind is None:
        return respond(SW_CONDITIONS)
    if not _still_verified(card, session, kind):
        return respond(SW_SECURITY)
    return respond(SW_OK, card.sign(session.verified[kind], cmd.data))
