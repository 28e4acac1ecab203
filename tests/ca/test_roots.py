"""The generated JPKI roots against the real ones (tests/vectors), field by field.

Everything is compared except what must differ: the key, serial, dates and signature.
Both certificates are parsed by asn1crypto, independently of the code that built ours.
"""

import hashlib
import subprocess
from datetime import timedelta

import pytest
from asn1crypto import pem
from asn1crypto import x509 as ax509

from tests.support import VECTORS

REAL = {"sign": ["sign_ca_2015.pem", "sign_ca_2023.pem"], "auth": ["auth_ca_2015.pem", "auth_ca_2023.pem"]}


def load(der_or_pem: bytes) -> ax509.Certificate:
    if pem.detect(der_or_pem):
        _, _, der_or_pem = pem.unarmor(der_or_pem)
    return ax509.Certificate.load(der_or_pem)


def name_fields(name: ax509.Name):
    """Attribute type, string type and value per RDN, in DER order."""
    return [[(atv["type"].dotted, atv["value"].name, atv["value"].native) for atv in rdn] for rdn in name.chosen]


def extension_fields(tbs, skip_ski_value=True):
    out = []
    for ext in tbs["extensions"]:
        value = ext["extn_value"].parsed.dump()
        if skip_ski_value and ext["extn_id"].dotted == "2.5.29.14":
            value = len(ext["extn_value"].parsed.native)
        out.append((ext["extn_id"].dotted, ext["critical"].native, value))
    return out


@pytest.mark.parametrize("kind", ["sign", "auth"])
@pytest.mark.parametrize("which", [0, 1], ids=["2015", "2023"])
def test_generated_root_matches_real_root(rt, kind, which):
    real = load((VECTORS / REAL[kind][which]).read_bytes())
    ours = load(rt.authority.issuer(kind).der)
    rt_, ot = real["tbs_certificate"], ours["tbs_certificate"]

    assert ot["version"].native == rt_["version"].native == "v3"
    assert ot["signature"].dump() == rt_["signature"].dump()  # sha256WithRSAEncryption, NULL params
    assert ours["signature_algorithm"].dump() == real["signature_algorithm"].dump()
    assert name_fields(ot["subject"]) == name_fields(rt_["subject"])
    assert ot["issuer"].dump() == ot["subject"].dump()
    assert name_fields(ot["issuer"]) == name_fields(rt_["issuer"])
    # UTCTime both ends, notAfter at 14:59:59Z (23:59:59 JST) the day before the 10th anniversary.
    for end in ("not_before", "not_after"):
        assert ot["validity"][end].name == rt_["validity"][end].name == "utc_time"
    na, nb = ot["validity"]["not_after"].native, ot["validity"]["not_before"].native
    assert (na.hour, na.minute, na.second) == (14, 59, 59)
    real_span = rt_["validity"]["not_after"].native - rt_["validity"]["not_before"].native
    assert abs((na - nb) - real_span) < timedelta(days=2)
    # Key: RSA-2048, e=65537, rsaEncryption with NULL parameters.
    assert ot["subject_public_key_info"]["algorithm"].dump() == rt_["subject_public_key_info"]["algorithm"].dump()
    ok, rk = ot["subject_public_key_info"]["public_key"].parsed, rt_["subject_public_key_info"]["public_key"].parsed
    assert ok["modulus"].native.bit_length() == rk["modulus"].native.bit_length() == 2048
    assert ok["public_exponent"].native == rk["public_exponent"].native == 65537
    # Extensions: same OIDs, order, criticality and DER values (SKI: same length and method).
    assert extension_fields(ot) == extension_fields(rt_)
    for tbs in (ot, rt_):
        ski = next(e for e in tbs["extensions"] if e["extn_id"].dotted == "2.5.29.14")["extn_value"].parsed.native
        bits = tbs["subject_public_key_info"]["public_key"].contents[1:]
        assert ski == hashlib.sha1(bits).digest()
    assert ot["issuer_unique_id"].native is None and ot["subject_unique_id"].native is None


def test_test_hierarchy_uses_jpki_test_org(rt_factory):
    runtime = rt_factory(hierarchy="test")
    cert = load(runtime.authority.issuer("sign").der)
    assert name_fields(cert["tbs_certificate"]["subject"])[1] == [("2.5.4.10", "utf8_string", "JPKI-TEST")]


def test_openssl_reads_generated_root_like_the_real_one(rt, tmp_path):
    path = tmp_path / "ours.pem"
    path.write_text(rt.authority.issuer("sign").pem)
    ours = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-subject", "-ext",
                           "keyUsage,basicConstraints"], capture_output=True, text=True, check=True).stdout
    real = subprocess.run(["openssl", "x509", "-in", str(VECTORS / "sign_ca_2023.pem"), "-noout", "-subject", "-ext",
                           "keyUsage,basicConstraints"], capture_output=True, text=True, check=True).stdout
    assert ours == real
