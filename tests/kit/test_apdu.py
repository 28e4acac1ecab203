"""The JPKI-AP interpreter (kit/apdu.py) on the stored software card, without a reader: every
command, every refusal status word, and the counters shared with the REST API and CLI."""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki_mock.kit import apdu, vpcd
from jpki_mock.kit.card import CardService
from jpki_mock.kit.reader import ChipCard, StoredCard, raw_pkcs1_sign, redact
from tests.support import HOLDER

PASSWORD = "ABC123XYZ"
PIN = "4321"
SELECT_AP = bytes.fromhex("00A4040C0A") + apdu.JPKI_AID
#: DigestInfo prefix for SHA-256 (RFC 8017 section 9.2, note 1)
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def select_ef(fid: int) -> bytes:
    return bytes.fromhex("00A4020C02") + fid.to_bytes(2, "big")


def verify_cmd(pin: str | None) -> bytes:
    if pin is None:
        return bytes.fromhex("00200080")
    return bytes.fromhex("00200080") + bytes([len(pin)]) + pin.encode()


def sign_cmd(digest_info: bytes) -> bytes:
    return bytes.fromhex("802A0080") + bytes([len(digest_info)]) + digest_info + b"\x00"


def read_cmd(offset: int, le: int) -> bytes:
    return bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, le & 0xFF])


def digest_info(data: bytes) -> bytes:
    return SHA256_PREFIX + hashlib.sha256(data).digest()


class Terminal:
    """A client at the card: sends APDUs through the interpreter and keeps the session."""

    def __init__(self, port: apdu.CardPort):
        self.card = ChipCard(port)

    def send(self, command: bytes) -> tuple[bytes, int]:
        response = self.card.transmit(command)
        return response[:-2], int.from_bytes(response[-2:], "big")

    def sw(self, command: bytes) -> int:
        return self.send(command)[1]

    def read_file(self, fid: int) -> bytes:
        assert self.sw(select_ef(fid)) == 0x9000
        head, sw = self.send(read_cmd(0, 4))
        assert sw == 0x9000
        size = int.from_bytes(head[2:4], "big") + 4
        out = b""
        while len(out) < size:
            chunk, sw = self.send(read_cmd(len(out), min(256, size - len(out))))
            assert sw == 0x9000, hex(sw)
            out += chunk
        return out


@pytest.fixture
def cards(kit_rt) -> CardService:
    return CardService(kit_rt.authority)


@pytest.fixture
def holder(kit_rt, cards) -> int:
    holder_id = kit_rt.authority.create_holder(HOLDER).id
    cards.create(holder_id, auth_pin=PIN, sign_password=PASSWORD)
    return holder_id


@pytest.fixture
def term(cards, holder) -> Terminal:
    t = Terminal(StoredCard(cards, holder))
    assert t.sw(SELECT_AP) == 0x9000
    return t


def test_parse_covers_the_iso_cases():
    assert apdu.parse(bytes.fromhex("00200080")) == apdu.Command(0, 0x20, 0, 0x80, None, None)
    assert apdu.parse(bytes.fromhex("00B0000000")).le == 256
    assert apdu.parse(bytes.fromhex("00A4020C020001")).data == b"\x00\x01"
    four = apdu.parse(bytes.fromhex("802A008002AABB00"))
    assert (four.data, four.le) == (b"\xaa\xbb", 256)
    assert apdu.parse(bytes.fromhex("00B00000000000")).le == 65536
    ext = apdu.parse(bytes.fromhex("802A0080000002AABB0000"))
    assert (ext.data, ext.le) == (b"\xaa\xbb", 65536)
    for bad in ("00B0", "00A4020C0300", "00A4020C05000102", "00B0000000FF", "00A40400000001AABB", "00A4040000000000"):
        with pytest.raises(apdu.MalformedApdu):
            apdu.parse(bytes.fromhex(bad))


def test_certificates_read_back_as_the_ca_issued_them(kit_rt, cards, holder, term):
    state = cards.state(holder)
    auth = term.read_file(apdu.EF_AUTH_CERT)
    assert auth == bytes(state.certificates["auth"].der)
    assert a_x509.Certificate.load(auth).subject.native["common_name"]
    auth_ca = x509.load_der_x509_certificate(term.read_file(apdu.EF_AUTH_CA))
    sign_ca = x509.load_der_x509_certificate(term.read_file(apdu.EF_SIGN_CA))
    x509.load_der_x509_certificate(auth).verify_directly_issued_by(auth_ca)
    assert "digital signature" in sign_ca.subject.rfc4514_string()
    # the signature certificate needs the password first
    assert term.sw(select_ef(apdu.EF_SIGN_CERT)) == 0x9000
    assert term.sw(read_cmd(0, 4)) == apdu.SW_SECURITY
    assert term.sw(select_ef(apdu.EF_SIGN_PIN)) == 0x9000
    assert term.sw(verify_cmd(PASSWORD)) == 0x9000
    sign = term.read_file(apdu.EF_SIGN_CERT)
    assert sign == bytes(state.certificates["sign"].der)
    x509.load_der_x509_certificate(sign).verify_directly_issued_by(sign_ca)


def test_read_binary_offsets_and_end_of_file(term):
    assert term.sw(select_ef(apdu.EF_TOKEN)) == 0x9000
    data, sw = term.send(read_cmd(0, 0x20))
    assert (data.rstrip(b" "), sw) == (b"JPKIAPICCTOKEN2", 0x9000)
    data, sw = term.send(read_cmd(10, 0))  # Le 00 = 256: only 22 bytes left
    assert (data, sw) == (apdu.TOKEN_INFO[10:], apdu.SW_END_OF_FILE)
    assert term.sw(read_cmd(32, 1)) == apdu.SW_OFFSET
    assert term.sw(bytes.fromhex("00B0000000") + b"") == apdu.SW_END_OF_FILE
    assert term.sw(bytes.fromhex("00B08100 10".replace(" ", ""))) == apdu.SW_FUNCTION  # short EF id
    assert term.sw(bytes.fromhex("00B00000")) == apdu.SW_WRONG_LENGTH  # no Le
    assert term.sw(bytes.fromhex("00B0000001AA")) == apdu.SW_WRONG_LENGTH  # data where none belongs
    for internal in (apdu.EF_AUTH_KEY, apdu.EF_AUTH_PIN, apdu.EF_SIGN_KEY, apdu.EF_SIGN_PIN):
        assert term.sw(select_ef(internal)) == 0x9000
        assert term.sw(read_cmd(0, 4)) == apdu.SW_INCOMPATIBLE_FILE


def test_select_refusals(cards, holder):
    t = Terminal(StoredCard(cards, holder))
    assert t.sw(select_ef(apdu.EF_AUTH_CERT)) == apdu.SW_NOT_FOUND  # the AP is not selected yet
    assert t.sw(read_cmd(0, 4)) == apdu.SW_NO_CURRENT_EF
    assert t.sw(bytes.fromhex("00A4040C0AA0000000030000000000")[:15]) == apdu.SW_NOT_FOUND  # PIV-like AID
    assert t.sw(SELECT_AP) == 0x9000
    assert t.sw(select_ef(0x0099)) == apdu.SW_NOT_FOUND
    assert t.sw(bytes.fromhex("00A4020C0100")) == apdu.SW_WRONG_LENGTH
    assert t.sw(bytes.fromhex("00A4020C")) == apdu.SW_WRONG_LENGTH
    assert t.sw(bytes.fromhex("00A40201020001")) == apdu.SW_P1P2
    assert t.sw(bytes.fromhex("00A40800020001")) == apdu.SW_P1P2
    assert t.sw(bytes.fromhex("00A4000C023F00")) == 0x9000  # MF
    assert t.sw(select_ef(apdu.EF_AUTH_CERT)) == apdu.SW_NOT_FOUND
    assert t.sw(bytes.fromhex("00A4040C")) == apdu.SW_WRONG_LENGTH


def test_class_and_instruction_refusals(term):
    assert term.sw(bytes.fromhex("0084000008")) == apdu.SW_INS        # GET CHALLENGE: not offered
    assert term.sw(bytes.fromhex("80CA000000")) == apdu.SW_INS
    assert term.sw(bytes.fromhex("FFCA000000")) == apdu.SW_CLA        # a reader's pseudo-APDU
    assert term.sw(bytes.fromhex("0CB0000004")) == apdu.SW_CLA        # secure messaging
    assert term.sw(bytes.fromhex("002A9E9A0100")) == apdu.SW_CLA      # ISO PSO: JPKI signs with CLA 80
    assert term.sw(bytes.fromhex("80A4040C0A") + apdu.JPKI_AID) == apdu.SW_CLA
    assert term.sw(b"\x00\xa4") == apdu.SW_WRONG_LENGTH


def test_verify_counts_on_the_stored_card(cards, holder, term):
    assert term.sw(verify_cmd(PIN)) == apdu.SW_NO_CURRENT_EF
    assert term.sw(select_ef(apdu.EF_AUTH_CERT)) == 0x9000
    assert term.sw(verify_cmd(PIN)) == apdu.SW_CONDITIONS  # not a PIN EF
    assert term.sw(select_ef(apdu.EF_AUTH_PIN)) == 0x9000
    assert term.sw(verify_cmd(None)) == 0x63C3
    assert term.sw(bytes.fromhex("00200180")) == apdu.SW_P1P2
    assert term.sw(bytes.fromhex("00200081")) == apdu.SW_REFERENCE_NOT_FOUND
    assert term.sw(verify_cmd("123")) == apdu.SW_WRONG_LENGTH      # format refusals cost no try
    assert term.sw(verify_cmd("12a4")) == apdu.SW_WRONG_DATA
    assert term.sw(verify_cmd(None)) == 0x63C3
    assert term.sw(verify_cmd("0000")) == 0x63C2
    # the same counter the REST API and CLI show
    assert cards.state(holder).as_dict()["auth"]["tries_left"] == 2
    assert term.sw(verify_cmd(None)) == 0x63C2
    assert term.sw(verify_cmd(PIN)) == 0x9000                       # right: the full count again
    assert cards.state(holder).as_dict()["auth"]["tries_left"] == 3
    assert term.sw(verify_cmd(None)) == 0x63C3
    # the signature password: 6-16 upper-case letters and digits, 5 tries
    assert term.sw(select_ef(apdu.EF_SIGN_PIN)) == 0x9000
    assert term.sw(verify_cmd(None)) == 0x63C5
    assert term.sw(verify_cmd("ABC12")) == apdu.SW_WRONG_LENGTH
    assert term.sw(verify_cmd("A" * 17)) == apdu.SW_WRONG_LENGTH
    assert term.sw(verify_cmd("abc123xyz")) == apdu.SW_WRONG_DATA
    assert term.sw(verify_cmd("WRONG1")) == 0x63C4
    assert cards.state(holder).as_dict()["sign"]["tries_left"] == 4


def test_three_wrong_pins_block_until_the_operator_unlocks(cards, holder, term):
    assert term.sw(select_ef(apdu.EF_AUTH_PIN)) == 0x9000
    assert [term.sw(verify_cmd("0000")) for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert term.sw(verify_cmd(PIN)) == apdu.SW_BLOCKED  # even the right PIN
    assert term.sw(verify_cmd(None)) == 0x63C0
    state = cards.state(holder).as_dict()["auth"]
    assert state["locked"] and state["tries_left"] == 0
    assert term.sw(select_ef(apdu.EF_AUTH_KEY)) == 0x9000
    assert term.sw(sign_cmd(digest_info(b"x"))) == apdu.SW_SECURITY
    cards.unlock(holder, "auth")                         # the existing operator flow
    assert term.sw(select_ef(apdu.EF_AUTH_PIN)) == 0x9000
    assert term.sw(verify_cmd(None)) == 0x63C3
    assert term.sw(verify_cmd(PIN)) == 0x9000
    assert term.sw(select_ef(apdu.EF_AUTH_KEY)) == 0x9000
    assert term.sw(sign_cmd(digest_info(b"x"))) == 0x9000


def test_compute_digital_signature(cards, holder, term):
    state = cards.state(holder)
    auth_key = x509.load_der_x509_certificate(bytes(state.certificates["auth"].der)).public_key()
    sign_key = x509.load_der_x509_certificate(bytes(state.certificates["sign"].der)).public_key()
    assert isinstance(auth_key, rsa.RSAPublicKey) and isinstance(sign_key, rsa.RSAPublicKey)
    di = digest_info(b"challenge")
    assert term.sw(sign_cmd(di)) == apdu.SW_NO_CURRENT_EF
    assert term.sw(select_ef(apdu.EF_AUTH_CERT)) == 0x9000
    assert term.sw(sign_cmd(di)) == apdu.SW_CONDITIONS  # not a key EF
    assert term.sw(select_ef(apdu.EF_AUTH_KEY)) == 0x9000
    assert term.sw(sign_cmd(di)) == apdu.SW_SECURITY
    assert term.sw(select_ef(apdu.EF_AUTH_PIN)) == 0x9000
    assert term.sw(verify_cmd(PIN)) == 0x9000
    assert term.sw(select_ef(apdu.EF_AUTH_KEY)) == 0x9000
    assert term.sw(bytes.fromhex("802A00810100")) == apdu.SW_P1P2
    assert term.sw(bytes.fromhex("802A0080")) == apdu.SW_WRONG_LENGTH
    assert term.sw(sign_cmd(b"\x01" * 246)) == apdu.SW_WRONG_LENGTH  # more than k - 11
    signature, sw = term.send(sign_cmd(di))
    assert sw == 0x9000 and len(signature) == 256
    auth_key.verify(signature, b"challenge", padding.PKCS1v15(), hashes.SHA256())
    # the user-auth PIN opens only the user-auth key
    assert term.sw(select_ef(apdu.EF_SIGN_KEY)) == 0x9000
    assert term.sw(sign_cmd(di)) == apdu.SW_SECURITY
    assert term.sw(select_ef(apdu.EF_SIGN_PIN)) == 0x9000
    assert term.sw(verify_cmd(PASSWORD)) == 0x9000
    assert term.sw(select_ef(apdu.EF_SIGN_KEY)) == 0x9000
    signature, sw = term.send(sign_cmd(digest_info(b"document")))
    assert sw == 0x9000
    sign_key.verify(signature, b"document", padding.PKCS1v15(), hashes.SHA256())
    # selecting the application again logs out (OpenSC's logout)
    assert term.sw(SELECT_AP) == 0x9000
    assert term.sw(select_ef(apdu.EF_SIGN_KEY)) == 0x9000
    assert term.sw(sign_cmd(di)) == apdu.SW_SECURITY


def test_power_events_clear_the_session(cards, holder, term):
    assert term.sw(select_ef(apdu.EF_AUTH_PIN)) == 0x9000
    assert term.sw(verify_cmd(PIN)) == 0x9000
    term.card.reset()
    assert term.sw(select_ef(apdu.EF_AUTH_KEY)) == apdu.SW_NOT_FOUND  # back at the MF
    assert term.sw(SELECT_AP) == 0x9000
    assert term.sw(select_ef(apdu.EF_AUTH_KEY)) == 0x9000
    assert term.sw(sign_cmd(digest_info(b"x"))) == apdu.SW_SECURITY
    assert term.card.atr() == bytes.fromhex("3BE000FF8131FE4514")


def test_a_reset_key_ends_the_verification(cards, holder, term):
    """An operator's `card reset` writes a new key: a session verified against the old one
    may not sign with it, and the certificate EF now holds the new certificate."""
    assert term.sw(select_ef(apdu.EF_AUTH_PIN)) == 0x9000
    assert term.sw(verify_cmd(PIN)) == 0x9000
    cards.reset(holder, "auth", "9999")
    assert term.sw(select_ef(apdu.EF_AUTH_KEY)) == 0x9000
    assert term.sw(sign_cmd(digest_info(b"x"))) == apdu.SW_SECURITY
    assert term.read_file(apdu.EF_AUTH_CERT) == bytes(cards.state(holder).certificates["auth"].der)
    assert term.sw(select_ef(apdu.EF_AUTH_PIN)) == 0x9000
    assert term.sw(verify_cmd(PIN)) == 0x63C2
    assert term.sw(verify_cmd("9999")) == 0x9000


def test_a_card_without_a_signature_key(kit_rt, cards):
    """Under 15: no signature certificate or key; the password EF answers 'not usable'."""
    young = dict(HOLDER, date_of_birth="520200101")
    holder_id = kit_rt.authority.create_holder(young).id
    cards.create(holder_id, auth_pin=PIN)
    t = Terminal(StoredCard(cards, holder_id))
    assert t.sw(SELECT_AP) == 0x9000
    assert t.sw(select_ef(apdu.EF_SIGN_CERT)) == apdu.SW_NOT_FOUND
    assert t.sw(select_ef(apdu.EF_SIGN_KEY)) == apdu.SW_NOT_FOUND
    assert t.sw(select_ef(apdu.EF_SIGN_PIN)) == 0x9000
    assert t.sw(verify_cmd(None)) == 0x63C0
    assert t.sw(verify_cmd("ABCDEF")) == apdu.SW_REFERENCE_UNUSABLE
    assert t.read_file(apdu.EF_AUTH_CERT)


def test_raw_signature_equals_the_pkcs1_v15_signature():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = b"same bytes"
    assert raw_pkcs1_sign(key, digest_info(data)) == key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def test_trace_masks_the_pin():
    assert redact(verify_cmd("1234")) == "00 20 00 80 04 ** ** ** **"
    assert redact(bytes.fromhex("00A4020C020018")) == "00 A4 02 0C 02 00 18"


def test_vpcd_frames_over_a_socket(cards, holder):
    """vpcd's side of the protocol: control bytes, the ATR, then APDUs in length-prefixed frames."""
    reader_end, card_end = socket.socketpair()
    card = ChipCard(StoredCard(cards, holder))
    thread = threading.Thread(target=vpcd.handle, args=(card_end, card), daemon=True)
    thread.start()

    def exchange(message: bytes) -> bytes:
        reader_end.sendall(len(message).to_bytes(2, "big") + message)
        size = int.from_bytes(reader_end.recv(2), "big")
        out = b""
        while len(out) < size:
            out += reader_end.recv(size - len(out))
        return out

    reader_end.sendall(b"\x00\x01\x01")  # power on: no answer
    assert exchange(b"\x04") == apdu.ATR
    assert exchange(SELECT_AP) == b"\x90\x00"
    assert exchange(select_ef(apdu.EF_AUTH_PIN)) == b"\x90\x00"
    assert exchange(verify_cmd(None)) == b"\x63\xc3"
    reader_end.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    card_end.close()


def test_a_store_failure_answers_6f00_and_keeps_the_card(cards, holder, capsys):
    class Broken(StoredCard):
        def tries_left(self, kind: str) -> int:
            raise RuntimeError("database went away")

    card = ChipCard(Broken(cards, holder))
    assert card.transmit(SELECT_AP)[-2:] == b"\x90\x00"
    assert card.transmit(select_ef(apdu.EF_AUTH_PIN))[-2:] == b"\x90\x00"
    assert card.transmit(verify_cmd(None)) == b"\x6f\x00"
    assert "database went away" in capsys.readouterr().err
    assert card.transmit(select_ef(apdu.EF_TOKEN))[-2:] == b"\x90\x00"  # the session goes on
