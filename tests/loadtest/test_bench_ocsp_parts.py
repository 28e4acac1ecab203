"""The OCSP benchmark's pure parts: wrk report parsing, openssl's index.txt, pre-encoded requests.

No timing here: the benchmark itself is ``make bench-ocsp``.  The index and the peer's
responder certificate are checked end to end by ``openssl ocsp`` answering from them.
"""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.x509 import ocsp

from jpki_mock.ca.status import REASONS
from jpki_mock.loadtest import ocsp_requests as oreq
from jpki_mock.loadtest.bench.openssl_peer import IndexRow, build_index, index_line, serial_hex, write_index
from jpki_mock.loadtest.bench.wrk import WrkError, duration_ms, parse_wrk

WRK_REPORT = """\
Running 5s test @ http://127.0.0.1:18082
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms    2.31ms  43.39ms   90.68%
    Req/Sec    16.10k     1.20k   18.99k    71.00%
  Latency Distribution
     50%  512.00us
     75%  803.00us
     90%    1.40ms
     99%   12.05ms
  160123 requests in 5.00s, 244.31MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:  32024.60
Transfer/sec:     48.86MB
ocsp_checked=160120 bad_http=3 bad_ocsp=1 wrong_status=2 bad_nonce=4
"""


def test_parse_wrk_report():
    r = parse_wrk(WRK_REPORT)
    assert (r.requests, r.seconds, r.rps) == (160123, 5.0, 32024.6)
    assert r.percentiles == {50: 0.512, 75: 0.803, 90: 1.4, 99: 12.05}
    assert (r.p50, r.p99) == (0.512, 12.05)
    assert r.socket_errors == {"connect": 0, "read": 2, "write": 0, "timeout": 1}
    assert r.non_2xx == 3
    assert r.checks["wrong_status"] == 2
    # 3 socket + 3 non-200 (counted once) + 1 OCSP error + 2 wrong + 4 nonce + 3 never checked
    assert r.errors == 16


def test_parse_wrk_clean_report_has_no_errors():
    text = WRK_REPORT.replace("  Socket errors: connect 0, read 2, write 0, timeout 1\n", "").replace(
        "  Non-2xx or 3xx responses: 3\n", "").replace(
        "ocsp_checked=160120 bad_http=3 bad_ocsp=1 wrong_status=2 bad_nonce=4",
        "ocsp_checked=160123 bad_http=0 bad_ocsp=0 wrong_status=0 bad_nonce=0")
    assert parse_wrk(text).errors == 0


@pytest.mark.parametrize("text, ms", [("812.00us", 0.812), ("1.23ms", 1.23), ("2.00s", 2000.0), ("1.50m", 90000.0)])
def test_duration_units(text, ms):
    assert duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("bad", ["", "12", "1.2 ms", "fast"])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(WrkError, match="cannot read wrk duration"):
        duration_ms(bad)
    with pytest.raises(WrkError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize("serial, text", [(0, "00"), (1, "01"), (255, "FF"), (256, "0100"), (1_000_001, "0F4241")])
def test_serial_hex_is_openssl_bn2hex(serial, text):
    assert serial_hex(serial) == text


T = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
R = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_index_lines():
    assert index_line(IndexRow(1_000_001, T, "good")) == "V\t310304050607Z\t\t0F4241\tunknown\t/CN=serial 1000001"
    assert index_line(IndexRow(16, T, "revoked", R, REASONS["cACompromise"])).split("\t")[:4] == \
        ["R", "310304050607Z", "260102030405Z,CACompromise", "10"]
    assert index_line(IndexRow(17, T, "revoked", R, REASONS["certificateHold"])).split("\t")[2] == \
        "260102030405Z,certificateHold,holdInstructionNone"
    assert index_line(IndexRow(18, datetime(2051, 1, 1), "revoked", R, None)).split("\t")[1:3] == \
        ["20510101000000Z", "260102030405Z"]
    assert build_index([IndexRow(1, T, "good"), IndexRow(2, T, "good")]).count("\n") == 2


@pytest.mark.parametrize("row, message", [
    (IndexRow(1, T, "hold"), "not good or revoked"),
    (IndexRow(1, T, "revoked"), "needs its revocation time"),
    (IndexRow(1, T, "revoked", R, 9), "no openssl name"),
    (IndexRow(-1, T, "good"), "negative"),
])
def test_index_refuses_what_openssl_cannot_read(row, message):
    with pytest.raises(ValueError, match=message):
        index_line(row)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 1_000_001, 2**63 - 1, 2**159])
def test_der_integer_matches_asn1crypto(value):
    assert oreq.der_integer(value) == core.Integer(value).dump()


def test_get_path_and_nonce_template_round_trip():
    name_hash, key_hash = bytes(range(20)), bytes(range(20, 40))
    der = oreq.request_der(name_hash, key_hash, 1_000_123)
    path = oreq.get_path("/ocsp", der)
    assert path.startswith("/ocsp/") and "/" not in path[len("/ocsp/"):]
    assert base64.b64decode(unquote(path[len("/ocsp/"):])) == der
    before, after = oreq.nonce_template(name_hash, key_hash, 1_000_123)
    nonce = bytes(range(100, 116))
    req = ocsp.load_der_ocsp_request(before + nonce + after)
    assert req.serial_number == 1_000_123
    assert (req.issuer_name_hash, req.issuer_key_hash) == (name_hash, key_hash)
    assert req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    target = oreq.Target(1_000_123, "revoked", REASONS["superseded"])
    fields = oreq.post_line(name_hash, key_hash, target).split()
    assert fields[0] == "post" and fields[4] == "0203" + f"{1_000_123:06x}" and fields[5] == "a1"
    assert fields[3] == "0414" + key_hash.hex()
    assert oreq.get_line(path, key_hash, oreq.Target(5, "good")).split() == [
        "get", path.encode().hex(), "0414" + key_hash.hex(), "020105", "80"]


def test_nonce_template_refuses_a_request_that_repeats_the_marker():
    """A key hash that happens to hold the marker would make the split put the nonce inside the
    CertID: the template is refused with the serial and the count, not built wrong."""
    key_hash = oreq.NONCE_MARKER + bytes(4)
    with pytest.raises(ValueError, match=r"serial 7 .* occurs 2 times, it must occur once"):
        oreq.nonce_template(bytes(20), key_hash, 7)


HOLDER = {"name": "山田\u3000太郎", "date_of_birth": "319801231", "gender": "1",
          "address": "東京都千代田区千代田1-1"}


def test_openssl_answers_from_the_index_with_the_peer_responder_certificate(rt, tmp_path):
    """The index built from the store and the responder certificate ``ca/`` issues for the peer:
    ``openssl ocsp`` answers good / revoked (with reason) / hold from them, and the answer
    verifies against the CA (checked by pyca/cryptography, not by our responder)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    auth = rt.authority
    issued = []
    for _ in range(3):
        holder = auth.create_holder(HOLDER)
        issued.append(auth.issue(holder.id, "auth", pkcs12_passphrase="bench-test")[0].certificate)
    auth.revoke("auth", str(issued[1].serial), "keyCompromise")
    auth.revoke("auth", str(issued[2].serial), "certificateHold")
    issuer = auth.issuer("auth")
    targets = [oreq.Target(issued[0].serial, "good"),
               oreq.Target(issued[1].serial, "revoked", REASONS["keyCompromise"]),
               oreq.Target(issued[2].serial, "revoked", REASONS["certificateHold"])]
    rows = []
    for t in targets:
        c = auth.get_certificate("auth", str(t.serial))
        rows.append(IndexRow(c.serial, c.not_after, c.status, c.revoked_at, c.reason))
    index = write_index(tmp_path / "index.txt", rows)
    rsigner, rkey = rt.keyring.write_peer_responder(issuer.id, tmp_path)
    assert (rkey.stat().st_mode & 0o777) == 0o600
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_bytes(issuer.certificate.public_bytes(Encoding.PEM))
    for t in targets:
        req = tmp_path / f"req-{t.serial}.der"
        req.write_bytes(oreq.request_der(issuer.name_hash["sha1"], issuer.key_hash["sha1"], t.serial))
        resp = tmp_path / f"resp-{t.serial}.der"
        done = subprocess.run(["openssl", "ocsp", "-index", str(index), "-CA", str(ca_pem), "-rsigner", str(rsigner),
                               "-rkey", str(rkey), "-reqin", str(req), "-respout", str(resp)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert oreq.check_response(resp.read_bytes(), t, issuer.certificate) == []
    # A wrong expectation is reported, not passed.
    wrong = oreq.Target(issued[0].serial, "revoked", REASONS["keyCompromise"])
    assert oreq.check_response((tmp_path / f"resp-{issued[0].serial}.der").read_bytes(), wrong,
                               issuer.certificate) == [f"serial {issued[0].serial}: GOOD, expected revoked"]
