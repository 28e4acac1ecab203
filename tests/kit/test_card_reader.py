"""The virtual My Number card with real PC/SC clients: OpenSC (opensc-tool, pkcs11-tool and
opensc-pkcs11.so's JPKI driver), pyscard's raw APDUs, Java's SunPKCS11, and a relying party
that checks the certificate's status by OCSP.

Everything runs here: a ``jpki-mock serve`` on 127.0.0.1, a private pcscd started by
``jpki-mock card reader start`` (its own mount and network namespaces, so vpcd's ports never
reach the host's interfaces), and two cards put in its two reader slots by ``jpki-mock card
insert``; all stopped by PID at the end.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from jpki_mock.kit import apdu
from tests.support import HOLDER, Server

pytestmark = [pytest.mark.server, pytest.mark.slow]


def needs_reader_stack() -> None:
    """What the reader tests need, or a failure naming it: never a silent skip.  `make test` runs
    as root in CI and tests/run.py installs every package named here (DEBIAN_PACKAGES)."""
    if os.geteuid() != 0:
        pytest.fail("the virtual card reader's private pcscd needs root (mount and network namespaces): "
                    "run `make test` as root, as CI does")
    missing = [tool for tool in ("pkcs11-tool", "opensc-tool", "java", "javac") if shutil.which(tool) is None]
    missing += [str(p) for p in (Path("/usr/sbin/pcscd"), Path(MODULE)) if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: tests/run.py installs pcscd, vsmartcard-vpcd, opensc and "
                    "default-jdk-headless (run the suite with `make test`)")

MODULE = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
PASSWORD, PIN = "HANAKO2026", "1234"
PASSWORD2, PIN2 = "JIRO2026X", "5678"
SELECT_AP = bytes.fromhex("00A4040C0A") + apdu.JPKI_AID
JAVA = r"""
import java.nio.charset.StandardCharsets;
import java.security.*;
import java.security.cert.X509Certificate;
import java.util.Base64;
import java.util.Collections;

/** Signs argv[2] with the first private key of the PKCS#11 token (argv[0]: SunPKCS11 config, argv[1]: PIN). */
public class CardSign {
    public static void main(String[] args) throws Exception {
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(provider);
        KeyStore store = KeyStore.getInstance("PKCS11", provider);
        store.load(null, args[1].toCharArray());
        for (String alias : Collections.list(store.aliases())) {
            if (!store.isKeyEntry(alias)) continue;
            PrivateKey key = (PrivateKey) store.getKey(alias, null);
            X509Certificate cert = (X509Certificate) store.getCertificate(alias);
            Signature signer = Signature.getInstance("SHA256withRSA", provider);
            signer.initSign(key);
            signer.update(args[2].getBytes(StandardCharsets.UTF_8));
            byte[] signature = signer.sign();
            Signature verifier = Signature.getInstance("SHA256withRSA");
            verifier.initVerify(cert.getPublicKey());
            verifier.update(args[2].getBytes(StandardCharsets.UTF_8));
            System.out.println("alias=" + alias);
            System.out.println("java-verified=" + verifier.verify(signature));
            System.out.println("signature=" + Base64.getEncoder().encodeToString(signature));
            System.out.println("certificate=" + Base64.getEncoder().encodeToString(cert.getEncoded()));
            return;
        }
        throw new IllegalStateException("no private key on the token");
    }
}
"""


@dataclass
class Bench:
    srv: Server
    holders: list[int]
    reader_dir: Path
    env: dict[str, str]
    work: Path

    def run(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        res = subprocess.run(list(args), env=self.env, capture_output=True, input=input, timeout=120, cwd=self.work)
        if check and res.returncode != 0:
            raise AssertionError(f"{args} exited {res.returncode}:\n{res.stdout.decode()}\n{res.stderr.decode()}")
        return res

    def p11(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("pkcs11-tool", "--module", MODULE, *args, check=check)

    def slot(self, reader: int, pin: str) -> str:
        """The PKCS#11 slot id of reader ``reader``'s token for the PIN named ``pin``."""
        listing = self.p11("--list-slots").stdout.decode()
        for block in re.split(r"\n(?=Slot \d+)", listing):
            m = re.match(r"Slot \d+ \((0x[0-9a-f]+)\): .* 00 0(\d)", block)
            if m and int(m.group(2)) == reader and f"({pin})" in block:
                return m.group(1)
        raise AssertionError(f"no slot for reader {reader} / {pin}:\n{listing}")

    def cert(self, holder: int, kind: str) -> x509.Certificate:
        out = self.srv.cli("card", "cert", str(holder), "--kind", kind, "--der",
                           *(["--password", PASSWORD if holder == self.holders[0] else PASSWORD2]
                             if kind == "sign" else [])).stdout
        return x509.load_der_x509_certificate(out)

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.srv.base + "/admin/api" + path, timeout=30,
                                headers={"Authorization": f"Bearer {self.srv.token}"}, **kwargs)


def _holder(srv: Server, name: str) -> int:
    out = srv.cli("holder", "add", "--name", name, "--dob", "1990-05-17", "--gender", "2",
                  "--address", HOLDER["address"]).stdout.decode()
    return int(re.search(r"(\d+)", out).group(1))


def wait_for_cards(env: dict[str, str], count: int) -> None:
    deadline = time.monotonic() + 30
    listing = ""
    while time.monotonic() < deadline:
        listing = subprocess.run(["opensc-tool", "--list-readers"], env=env, capture_output=True, text=True).stdout
        if listing.count(" Yes ") >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"the cards did not appear in the readers:\n{listing}")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Iterator[Bench]:
    needs_reader_stack()
    base = tmp_path_factory.mktemp("card-reader")
    srv = Server(base / "var", workers=1)
    srv.token = srv.init()
    srv.start()
    reader_dir = base / "pcsc"
    started = False
    try:
        holders = [_holder(srv, "山田\u3000花子"), _holder(srv, "山田\u3000次郎")]
        srv.cli("card", "create", str(holders[0]), "--sign-password", PASSWORD, "--auth-pin", PIN)
        srv.cli("card", "create", str(holders[1]), "--sign-password", PASSWORD2, "--auth-pin", PIN2)
        out = srv.cli("card", "reader", "start", "--dir", str(reader_dir), "--readers", "2").stdout.decode()
        started = True
        sock = re.search(r"PCSCLITE_CSOCK_NAME=(\S+)", out).group(1)
        env = {**srv.env, "PCSCLITE_CSOCK_NAME": sock}
        for i, holder in enumerate(holders):
            srv.cli("card", "insert", str(holder), "--reader-dir", str(reader_dir), "--port", str(35963 + i),
                    "--trace")
        wait_for_cards(env, 2)
        work = base / "work"
        work.mkdir()
        yield Bench(srv, holders, reader_dir, env, work)
    finally:
        srv.cli("card", "remove", check=False)
        if started:
            srv.cli("card", "reader", "stop", "--dir", str(reader_dir), check=False)
        srv.stop()


def test_the_cards_sit_in_two_private_readers(bench):
    listing = bench.run("opensc-tool", "--list-readers").stdout.decode()
    assert re.search(r"0\s+Yes\s+jpki-mock vpcd 00 00", listing)
    assert re.search(r"1\s+Yes\s+jpki-mock vpcd 00 01", listing)
    # OpenSC recognises a My Number card by the ATR and picks its JPKI driver
    assert bench.run("opensc-tool", "--reader", "0", "--atr").stdout.decode().strip() == "3b:e0:00:ff:81:31:fe:45:14"
    assert bench.run("opensc-tool", "--reader", "0", "--name").stdout.decode().strip() == "jpki"
    # vpcd listens only inside the private network namespace: not on the host
    ports = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    assert ":35963 " not in ports and ":35964 " not in ports
    # opensc-tool sends raw APDUs too: SELECT the JPKI-AP, then the token information EF
    out = bench.run("opensc-tool", "--reader", "1", "--send-apdu", SELECT_AP.hex(":"),
                    "--send-apdu", "00:A4:02:0C:02:00:06", "--send-apdu", "00:B0:00:00:20").stdout.decode()
    assert "SW1=0x90, SW2=0x00" in out and "JPKIAPICCTOKEN2" in out


def test_pkcs11_tool_lists_reads_logs_in_and_signs(bench):
    holder = bench.holders[0]
    auth_slot = bench.slot(0, "User Authentication PIN")
    objects = bench.p11("--slot", auth_slot, "--list-objects").stdout.decode()
    for label in ("User Authentication Certificate", "User Authentication Certificate CA",
                  "Digital Signature Certificate CA", "User Authentication Public Key"):
        assert f"label:      {label}" in objects
    # the user-auth certificate reads without a PIN, byte for byte the one the CA issued
    bench.p11("--slot", auth_slot, "--read-object", "--type", "cert", "--id", "01", "-o", "auth.der")
    auth = x509.load_der_x509_certificate((bench.work / "auth.der").read_bytes())
    assert auth == bench.cert(holder, "auth")
    (bench.work / "challenge").write_bytes(b"login challenge 42")
    bench.p11("--slot", auth_slot, "--login", "--pin", PIN, "--sign", "--mechanism", "SHA256-RSA-PKCS",
              "--id", "01", "-i", "challenge", "-o", "auth.sig")
    key = auth.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify((bench.work / "auth.sig").read_bytes(), b"login challenge 42", padding.PKCS1v15(), hashes.SHA256())
    # CA certificates read freely too and certify the end-entity ones
    bench.p11("--slot", auth_slot, "--read-object", "--type", "cert", "--id", "03", "-o", "auth-ca.der")
    auth.verify_directly_issued_by(x509.load_der_x509_certificate((bench.work / "auth-ca.der").read_bytes()))


def test_pkcs11_signature_key_after_the_signature_password(bench):
    holder = bench.holders[0]
    sign_slot = bench.slot(0, "Digital Signature PIN")
    # the signature certificate is private: listed only after the password
    public = bench.p11("--slot", sign_slot, "--list-objects").stdout.decode()
    assert "label:      Digital Signature Certificate\n" not in public
    bench.p11("--slot", sign_slot, "--login", "--pin", PASSWORD, "--read-object", "--type", "cert",
              "--id", "02", "-o", "sign.der")
    sign = x509.load_der_x509_certificate((bench.work / "sign.der").read_bytes())
    assert sign == bench.cert(holder, "sign")
    (bench.work / "document").write_bytes("申請書".encode())
    bench.p11("--slot", sign_slot, "--login", "--pin", PASSWORD, "--sign", "--mechanism", "SHA256-RSA-PKCS",
              "--id", "02", "-i", "document", "-o", "document.sig")
    key = sign.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify((bench.work / "document.sig").read_bytes(), "申請書".encode(), padding.PKCS1v15(), hashes.SHA256())
    # a wrong password is refused and costs a stored try
    res = bench.p11("--slot", sign_slot, "--login", "--pin", "WRONG123", "--sign", "--mechanism",
                    "SHA256-RSA-PKCS", "--id", "02", "-i", "document", "-o", "bad.sig", check=False)
    assert res.returncode != 0 and b"CKR_PIN_INCORRECT" in res.stderr
    assert bench.admin("GET", f"/holders/{holder}/card").json()["sign"]["tries_left"] == 4
    bench.p11("--slot", sign_slot, "--login", "--pin", PASSWORD, "--sign", "--mechanism", "SHA256-RSA-PKCS",
              "--id", "02", "-i", "document", "-o", "document.sig")
    assert bench.admin("GET", f"/holders/{holder}/card").json()["sign"]["tries_left"] == 5


@pytest.fixture
def pyscard(bench) -> Iterator:
    """A pyscard connection to reader 0 (pcsc-lite reads PCSCLITE_CSOCK_NAME once per process:
    this module's pcscd is the only one it talks to)."""
    before = os.environ.get("PCSCLITE_CSOCK_NAME")
    os.environ["PCSCLITE_CSOCK_NAME"] = bench.env["PCSCLITE_CSOCK_NAME"]
    from smartcard.System import readers

    reader = next(r for r in readers() if str(r).endswith("00 00"))
    conn = reader.createConnection()
    conn.connect()
    # The card keeps its selection between PC/SC clients, as a real one does: start at the MF.
    assert tx(conn, bytes.fromhex("00A4000C023F00"))[1] == 0x9000
    yield conn
    conn.disconnect()
    conn.release()
    if before is None:
        del os.environ["PCSCLITE_CSOCK_NAME"]
    else:
        os.environ["PCSCLITE_CSOCK_NAME"] = before


def tx(conn, command: bytes) -> tuple[bytes, int]:
    data, sw1, sw2 = conn.transmit(list(command))
    return bytes(data), (sw1 << 8) | sw2


def test_pyscard_raw_apdus_every_command_and_refusal(bench, pyscard):
    holder = bench.holders[0]

    def sw(hex_apdu: str | bytes) -> int:
        return tx(pyscard, bytes.fromhex(hex_apdu) if isinstance(hex_apdu, str) else hex_apdu)[1]

    assert sw("00A4020C02000A") == 0x6A82                       # EF before the application
    assert sw("00A4040C0AD392F000260100000002") == 0x6A82       # another AID
    assert sw(SELECT_AP) == 0x9000
    assert sw("00A4020C020006") == 0x9000
    data, status = tx(pyscard, bytes.fromhex("00B0000020"))
    assert (data.rstrip(b" "), status) == (b"JPKIAPICCTOKEN2", 0x9000)
    assert sw("00B0001000") == 0x6282                           # Le past the end
    assert sw("00B0002001") == 0x6B00                           # offset past the end
    assert sw("00A4020C020099") == 0x6A82
    assert sw("00A4020C0100") == 0x6700
    # the user-auth certificate, read in chunks at offsets
    assert sw("00A4020C02000A") == 0x9000
    head, status = tx(pyscard, bytes.fromhex("00B0000004"))
    size = int.from_bytes(head[2:4], "big") + 4
    der = b""
    while len(der) < size:
        n = min(0xFF, size - len(der))
        chunk, status = tx(pyscard, bytes([0, 0xB0, len(der) >> 8, len(der) & 0xFF, n]))
        assert status == 0x9000
        der += chunk
    assert x509.load_der_x509_certificate(der) == bench.cert(holder, "auth")
    assert sw("00A4020C020001") == 0x9000
    assert sw("00B0000004") == 0x6982                           # signature certificate: password first
    assert sw("00A4020C020017") == 0x9000
    assert sw("00B0000004") == 0x6981                           # a key never reads out
    assert sw("802A00803300" + "00" * 51) == 0x6982             # no PIN verified
    assert sw("00A4020C020018") == 0x9000
    assert sw("00200080") == 0x63C3
    assert sw("0020008003313233") == 0x6700                     # 3 digits: refused, no try spent
    assert sw("002000800431323341") == 0x6A80                   # not digits: refused, no try spent
    assert sw("0084000008") == 0x6D00
    assert sw("FFCA000000") == 0x6E00
    assert sw("00200080") == 0x63C3
    assert sw(SELECT_AP) == 0x9000


def test_pyscard_three_wrong_pins_block_and_the_unlock_flow_restores(bench, pyscard):
    holder = bench.holders[0]
    verify = bytes.fromhex("0020008004")
    assert tx(pyscard, SELECT_AP)[1] == 0x9000
    assert tx(pyscard, bytes.fromhex("00A4020C020018"))[1] == 0x9000
    assert [tx(pyscard, verify + b"0000")[1] for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert tx(pyscard, verify + PIN.encode())[1] == 0x6983
    card = bench.admin("GET", f"/holders/{holder}/card").json()
    assert card["auth"]["locked"] is True and card["auth"]["tries_left"] == 0
    # the REST API refuses too: the same stored counter
    r = bench.admin("POST", f"/holders/{holder}/card/authenticate",
                    json={"pin": PIN, "challenge_base64": base64.b64encode(b"x").decode()})
    assert r.status_code == 409
    # the existing operator flow: unlock
    assert bench.admin("POST", f"/holders/{holder}/card/unlock", json={"kind": "auth"}).status_code == 200
    assert tx(pyscard, bytes.fromhex("00200080"))[1] == 0x63C3
    assert tx(pyscard, verify + PIN.encode())[1] == 0x9000
    assert tx(pyscard, bytes.fromhex("00A4020C020017"))[1] == 0x9000
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32)
    signature, status = tx(pyscard, bytes.fromhex("802A008033") + digest_info + b"\x00")
    assert status == 0x9000 and len(signature) == 256
    key = bench.cert(holder, "auth").public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, bytes(32), padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def test_java_sunpkcs11_signs_with_the_card(bench):
    java, javac = shutil.which("java"), shutil.which("javac")
    assert java and javac  # the bench fixture checked the stack (needs_reader_stack)
    (bench.work / "CardSign.java").write_text(JAVA)
    bench.run(javac, "CardSign.java")
    slots = bench.p11("--list-slots").stdout.decode()
    auth_slot = bench.slot(0, "User Authentication PIN")
    listed = re.findall(r"^Slot \d+ \((0x[0-9a-f]+)\)", slots, re.M)
    (bench.work / "pkcs11.cfg").write_text(f"name = JPKI\nlibrary = {MODULE}\n"
                                           f"slotListIndex = {listed.index(auth_slot)}\n")
    out = bench.run(java, "-cp", ".", "CardSign", "pkcs11.cfg", PIN, "ログイン challenge").stdout.decode()
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert fields["java-verified"] == "true"
    cert = x509.load_der_x509_certificate(base64.b64decode(fields["certificate"]))
    assert cert == bench.cert(bench.holders[0], "auth")
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(fields["signature"]), "ログイン challenge".encode(), padding.PKCS1v15(),
               hashes.SHA256())


def _ocsp_status(bench, cert: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
    from tests.support.ocsp import verify

    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    r = requests.post(bench.srv.base + "/ocsp", data=request.public_bytes(Encoding.DER),
                      headers={"Content-Type": "application/ocsp-request"}, timeout=30)
    assert r.status_code == 200
    response = ocsp.load_der_ocsp_response(r.content)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    verify(response, issuer)
    assert response.serial_number == cert.serial_number
    return response.certificate_status


def test_relying_party_login_with_ocsp(bench):
    """A service's login: a fresh challenge signed by the card through PKCS#11, verified with
    the certificate read from the card, whose status the service asks the mock's OCSP."""
    holder = bench.holders[1]                                   # the card in the second reader
    slot = bench.slot(1, "User Authentication PIN")
    challenge = os.urandom(32)
    (bench.work / "rp-challenge").write_bytes(challenge)
    bench.p11("--slot", slot, "--read-object", "--type", "cert", "--id", "01", "-o", "rp-auth.der")
    bench.p11("--slot", slot, "--read-object", "--type", "cert", "--id", "03", "-o", "rp-ca.der")
    bench.p11("--slot", slot, "--login", "--pin", PIN2, "--sign", "--mechanism", "SHA256-RSA-PKCS",
              "--id", "01", "-i", "rp-challenge", "-o", "rp.sig")
    cert = x509.load_der_x509_certificate((bench.work / "rp-auth.der").read_bytes())
    issuer = x509.load_der_x509_certificate((bench.work / "rp-ca.der").read_bytes())
    assert cert == bench.cert(holder, "auth")
    cert.verify_directly_issued_by(issuer)
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify((bench.work / "rp.sig").read_bytes(), challenge, padding.PKCS1v15(), hashes.SHA256())
    assert _ocsp_status(bench, cert, issuer) == ocsp.OCSPCertStatus.GOOD
    # the holder reports the card lost: the service must refuse the next login
    bench.srv.cli("cert", "revoke", "--issuer", "auth", "--serial", str(cert.serial_number),
                  "--reason", "keyCompromise")
    assert _ocsp_status(bench, cert, issuer) == ocsp.OCSPCertStatus.REVOKED
    # the card still signs (telling a revoked certificate is the verifier's job)
    bench.p11("--slot", slot, "--login", "--pin", PIN2, "--sign", "--mechanism", "SHA256-RSA-PKCS",
              "--id", "01", "-i", "rp-challenge", "-o", "rp2.sig")


def test_remove_takes_the_card_out(bench):
    holder = bench.holders[1]
    out = bench.srv.cli("card", "remove", str(holder)).stdout.decode()
    assert "from port 35964" in out
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listing = bench.run("opensc-tool", "--list-readers").stdout.decode()
        if re.search(r"1\s+No\s+jpki-mock vpcd 00 01", listing):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(listing)
    bench.srv.cli("card", "insert", str(holder), "--reader-dir", str(bench.reader_dir), "--port", "35964")
    wait_for_cards(bench.env, 2)
    trace = (bench.srv.data_dir / "cards" / "35963.log").read_text()
    assert "> 00 20 00 80 04 ** ** ** **" in trace and "00 20 00 80 04 31 32 33 34" not in trace
