"""Only ca/signer.py (with the decrypt helper in ca/keys.py it calls) decrypts CA keys: every
other part signs through :class:`ca.signer.Keyring` / :class:`ca.signer.CASigner`."""

import pickle
import re
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.support import PASSPHRASE

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("ca", "kit", "crl", "ocsp", "loadtest")
KEY_HOLDERS = {"ca/signer.py", "ca/keys.py"}
#: the software card opens its own card keys (sealed under the PIN, kit/card.py), never a CA key
CARD_KEYS = {"kit/card.py"}
DECRYPTING = re.compile(r"\b(decrypt_key|load_der_private_key|load_pem_private_key)\(")


def sources():
    for part in PARTS:
        for path in sorted((ROOT / part).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def test_only_the_signer_decrypts_ca_keys():
    offenders = [(rel, m.group(0)) for rel, text in sources() if rel not in KEY_HOLDERS | CARD_KEYS
                 for m in DECRYPTING.finditer(text)]
    assert offenders == []
    # The card's own key loading never touches the CA key column.
    for rel, text in sources():
        if rel in CARD_KEYS:
            assert "key_pkcs8" not in text and "CAGeneration" not in text
    signer = (ROOT / "ca/signer.py").read_text(encoding="utf-8")
    assert "decrypt_key(" in signer  # the scan looks for what the signer really calls


def test_no_part_reaches_for_a_key_object():
    """The name-mangled key accessor is gone, and nothing outside the signer reads the attribute."""
    for rel, text in sources():
        assert "_ca_key_for_issuance" not in text, rel
        if rel != "ca/signer.py":
            assert "_CASigner__key" not in text, rel


def test_sealed_signer_opens_in_a_worker_into_the_same_signature(rt):
    issuer = rt.authority.issuer("sign")
    sealed = rt.keyring.sealed_signer(issuer.id)
    assert PASSPHRASE not in repr(sealed)
    shipped = pickle.loads(pickle.dumps(sealed))  # what a spawned worker process receives
    signer = shipped.open()
    assert signer.issuer.id == issuer.id and signer.issuer.der == issuer.der
    data = b"tbs bytes"
    signature = signer.sign(data)
    issuer.certificate.public_key().verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    assert signature == rt.keyring.ca_signer(issuer.id).sign(data)  # PKCS#1 v1.5 is deterministic
