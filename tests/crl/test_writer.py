"""The streaming writer: real DER parsed back by asn1crypto and verified with the CA's key."""

from __future__ import annotations

import io
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone

import pytest
from asn1crypto import core
from asn1crypto import crl as acrl
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki_mock.crl.extensions import HOLD_INSTRUCTION_REJECT, crl_extensions
from jpki_mock.crl.http import parse_time
from jpki_mock.crl.writer import CrlHeader, crl_time, encode_entries, write_crl

T = datetime(2026, 11, 26, 3, 0, 0, tzinfo=UTC)


class KeySigner:
    """A CASigner stand-in around a local key: the writer needs only sign_prehashed."""

    from jpki_mock.ca.signer import SHA256_RSA_ALGORITHM as algorithm_der

    def __init__(self, key):
        self.key = key

    def sign_prehashed(self, digest: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import utils
        return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def _hold_instruction(rc) -> str | None:
    for ext in rc["crl_entry_extensions"]:
        if ext["extn_id"].native == "hold_instruction_code":
            return ext["extn_value"].parsed.dotted
    return None


_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _issuer(key):
    name = x509.Name.from_rfc4514_string("CN=Test CA,O=JPKI,C=JP")
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(T - timedelta(days=1)).not_valid_after(T + timedelta(days=10))
            .sign(key, hashes.SHA256()))


def _write(tmp_path, rows, number=7, key=None):
    key = key or _KEY
    cert = _issuer(key)
    head = CrlHeader(cert.subject.public_bytes(), T, T + timedelta(days=1),
                     crl_extensions(ski=b"\x01" * 20, number=number))
    written = write_crl(tmp_path / "out.crl", head, rows, KeySigner(key), key.key_size)
    return written, cert


def test_entries_reasons_and_signature(tmp_path):
    epoch = int(T.timestamp())
    rows = [(5, epoch - 60, 1), (200, epoch - 59, 0), (2**64 + 3, epoch, 6), (2**159, epoch, 4)]
    written, cert = _write(tmp_path, rows)
    data = (tmp_path / "out.crl").read_bytes()
    assert written.entries == 4 and written.size == len(data)
    parsed = acrl.CertificateList.load(data)
    tbs = parsed["tbs_cert_list"]
    assert tbs["version"].native == "v2"
    assert tbs["issuer"].dump() == cert.subject.public_bytes()
    assert tbs["this_update"].native == T and tbs["next_update"].native == T + timedelta(days=1)
    got = [(rc["user_certificate"].native, rc["revocation_date"].native,
            rc.crl_reason_value.native if rc.crl_reason_value else None,
            _hold_instruction(rc)) for rc in tbs["revoked_certificates"]]
    assert got == [
        (5, T - timedelta(seconds=60), "key_compromise", None),
        # RFC 5280 section 5.3.1: no reasonCode rather than unspecified.
        (200, T - timedelta(seconds=59), None, None),
        (2**64 + 3, T, "certificate_hold", HOLD_INSTRUCTION_REJECT),
        (2**159, T, "superseded", None),
    ]
    assert parsed.crl_number_value.native == 7
    loaded = x509.load_der_x509_crl(data)
    assert loaded.is_signature_valid(cert.public_key())
    assert parsed.dump() == data  # canonical DER: asn1crypto re-encodes it byte for byte


def test_empty_crl_has_no_revoked_certificates_field(tmp_path):
    written, cert = _write(tmp_path, [])
    data = (tmp_path / "out.crl").read_bytes()
    tbs = acrl.CertificateList.load(data)["tbs_cert_list"]
    # RFC 5280 section 5.1.2.6: absent, not an empty SEQUENCE.
    assert not tbs["revoked_certificates"].contents
    assert written.entries == 0
    assert x509.load_der_x509_crl(data).is_signature_valid(cert.public_key())


def test_large_crl_spans_several_buffers(tmp_path):
    epoch = int(T.timestamp())
    rows = ((1_000_001 + i, epoch - i * 37, (1, 3, 4, 5, 6)[i % 5]) for i in range(60_000))
    written, cert = _write(tmp_path, rows)
    data = (tmp_path / "out.crl").read_bytes()
    loaded = x509.load_der_x509_crl(data)
    assert len(loaded) == written.entries == 60_000
    assert loaded.is_signature_valid(cert.public_key())
    last = loaded.get_revoked_certificate_by_serial_number(1_000_001 + 59_999)
    assert last.revocation_date_utc == T - timedelta(seconds=59_999 * 37)


def test_encoding_memory_does_not_grow_with_entries():
    """The buffer is spilled when full (1 MiB by default, 64 KiB here): memory stays at the buffer's size
    however many entries stream through."""
    epoch = int(T.timestamp())
    sink = io.BufferedWriter(io.FileIO("/dev/null", "w"))
    tracemalloc.start()
    try:
        count, size, latest = encode_entries(((i + 1, epoch + i, 1) for i in range(30_000)), sink, flush_at=1 << 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sink.close()
    assert count == 30_000 and size > 1_000_000 and latest == epoch + 29_999
    assert peak < 250_000, peak


def test_issuer_name_bytes_are_copied_verbatim(tmp_path):
    """All JPKI generations share one DN; the CRL's issuer must be byte-identical to the certificate's subject."""
    _, cert = _write(tmp_path, [(1, int(T.timestamp()), 5)])
    data = (tmp_path / "out.crl").read_bytes()
    assert cert.subject.public_bytes() in data
    assert x509.load_der_x509_crl(data).issuer == cert.subject


@pytest.mark.parametrize("when, tag", [
    (datetime(2026, 11, 26, 3, 4, 5, tzinfo=UTC), core.UTCTime),
    (datetime(1950, 1, 1, tzinfo=UTC), core.UTCTime),
    (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), core.UTCTime),
    (datetime(2050, 1, 1, tzinfo=UTC), core.GeneralizedTime),  # RFC 5280 section 5.1.2.4
])
def test_crl_times(when, tag):
    encoded = crl_time(when)
    assert encoded == tag(when).dump()
    assert tag.load(encoded).native == when
    # The HTTP server's own reader (Last-Modified / Expires) against asn1crypto's encoding.
    assert parse_time(tag(when).dump()) == when


def test_crl_times_are_converted_to_utc():
    jst = timezone(timedelta(hours=9))
    assert crl_time(datetime(2026, 11, 26, 12, 4, 5, tzinfo=jst)) == core.UTCTime(T.replace(minute=4, second=5)).dump()


def test_naive_time_is_refused(tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        crl_time(datetime(2026, 1, 1))
    head = CrlHeader(b"\x30\x00", datetime(2026, 1, 1), datetime(2026, 1, 2), crl_extensions(ski=b"k", number=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        write_crl(tmp_path / "x.crl", head, [], KeySigner(None), 2048)  # refused before anything is signed
    assert not (tmp_path / "x.crl").exists()
