"""Object identifiers used by JPKI certificates (docs/sources.md sections 2-3)."""

from cryptography.x509.oid import ObjectIdentifier

from jpki_mock.vocab import Kind

# Basic-four otherNames in the signature certificate's subjectAltName [C], under J-LIS's
# arc 1.2.392.200149.8.5.5.  The certificate carries them in the order of SAN_ORDER.
NAME = ObjectIdentifier("1.2.392.200149.8.5.5.1")
NAME_FLAGS = ObjectIdentifier("1.2.392.200149.8.5.5.2")
GENDER = ObjectIdentifier("1.2.392.200149.8.5.5.3")
DATE_OF_BIRTH = ObjectIdentifier("1.2.392.200149.8.5.5.4")
ADDRESS = ObjectIdentifier("1.2.392.200149.8.5.5.5")
ADDRESS_FLAGS = ObjectIdentifier("1.2.392.200149.8.5.5.6")

#: the real order of the six otherNames [C]: name, date of birth, gender, address, then the flags.
SAN_ORDER = (NAME, DATE_OF_BIRTH, GENDER, ADDRESS, NAME_FLAGS, ADDRESS_FLAGS)

# Certificate policies [S].  The auth test OID is our inference by analogy with the sign one [I].
# Keyed by (hierarchy, kind) as plain strings: callers hold a kind as the str a Kind equals.
POLICY: dict[tuple[str, str], ObjectIdentifier] = {
    ("production", Kind.SIGN): ObjectIdentifier("1.2.392.200149.8.5.1.1.20"),
    ("production", Kind.AUTH): ObjectIdentifier("1.2.392.200149.8.5.1.3.30"),
    ("test", Kind.SIGN): ObjectIdentifier("1.2.392.200149.8.5.1.0.20"),
    ("test", Kind.AUTH): ObjectIdentifier("1.2.392.200149.8.5.1.0.30"),
}

# RFC 6960 section 4.2.2.2.1: a delegated responder's certificate need not itself be checked.
OCSP_NOCHECK = ObjectIdentifier("1.3.6.1.5.5.7.48.1.5")
