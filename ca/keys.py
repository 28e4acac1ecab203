"""Key handling: generation, encryption at rest, and parsing caller-supplied keys and CSRs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_mock.errors import ConfigError, InvalidInput, MalformedData

RSA_BITS = 2048  # JPKI: RSA-2048, e=65537 for the CAs and the card keys [C]
MAX_PEM = 16384

_Parsed = TypeVar("_Parsed")


def generate_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def encrypt_key(key: rsa.RSAPrivateKey, passphrase: str) -> bytes:
    """PKCS#8 DER encrypted with the passphrase (PBES2 / AES-256-CBC)."""
    if not passphrase:
        raise ConfigError("no key passphrase configured", field="key_passphrase")
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


def decrypt_key(blob: bytes, passphrase: str) -> rsa.RSAPrivateKey:
    if not passphrase:
        raise ConfigError("no key passphrase configured", field="key_passphrase")
    try:
        key = serialization.load_der_private_key(blob, passphrase.encode())
    except (ValueError, TypeError):
        # Do not echo anything about the passphrase: only that it did not open the key.
        raise ConfigError(
            "the configured key passphrase does not decrypt the CA keys in this data directory",
            field="key_passphrase",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):  # pragma: no cover - we only store RSA
        raise ConfigError("stored key is not RSA", field="key_passphrase")
    return key


def _as_bytes(value: str | bytes, field: str) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes):
        raise InvalidInput("must be PEM text", field=field)
    if len(value) > MAX_PEM:
        raise InvalidInput(f"is {len(value)} bytes", field=field, allowed=f"at most {MAX_PEM} bytes")
    return value


def check_subject_key(key: object, field: str) -> rsa.RSAPublicKey:
    """JPKI card keys are RSA-2048 with e=65537; we accept RSA 2048-4096 and say so otherwise."""
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidInput(f"is a {type(key).__name__.lstrip('_')}, not an RSA key", field=field,
                           allowed="RSA 2048-4096 bits")
    if not 2048 <= key.key_size <= 4096:
        raise InvalidInput(f"is RSA-{key.key_size}", field=field, allowed="RSA 2048-4096 bits")
    return key


def _parse(value: str | bytes, field: str, pem_loader: Callable[[bytes], _Parsed],
           der_loader: Callable[[bytes], _Parsed], what: str, example: str) -> _Parsed:
    data = _as_bytes(value, field)
    try:
        return pem_loader(data) if data.lstrip().startswith(b"-----") else der_loader(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise MalformedData(f"is not a PEM or DER {what}", field=field, allowed=example) from None


def load_public_key(value: str | bytes, field: str = "public_key") -> rsa.RSAPublicKey:
    key = _parse(value, field, serialization.load_pem_public_key, serialization.load_der_public_key,
                 "SubjectPublicKeyInfo", "-----BEGIN PUBLIC KEY----- ...")
    return check_subject_key(key, field)


def load_csr(value: str | bytes, field: str = "csr") -> rsa.RSAPublicKey:
    """The public key of a PKCS#10 request whose self-signature verifies (proof of possession)."""
    csr = _parse(value, field, x509.load_pem_x509_csr, x509.load_der_x509_csr,
                 "PKCS#10 request", "-----BEGIN CERTIFICATE REQUEST----- ...")
    try:
        valid = csr.is_signature_valid
    except (ValueError, InvalidSignature, UnsupportedAlgorithm):  # pragma: no cover
        valid = False
    if not valid:
        raise MalformedData("signature does not verify (no proof of possession)", field=field)
    return check_subject_key(csr.public_key(), field)
