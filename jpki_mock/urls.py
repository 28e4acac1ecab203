"""URL layout shared by the certificate profile (CRLDP URI, AIA) and the HTTP servers.

One place, so that the URI written into a certificate is always one the server answers.
"""

from __future__ import annotations

OCSP_PATH = "/ocsp"
CRL_PREFIX = "/crl"
#: the CA certificates, every generation (served by the public pages)
CA_PREFIX = "/ca"


def ocsp_url(base: str) -> str:
    return f"{base}{OCSP_PATH}"


def crl_path(kind: str, generation: int, partition: str = "full", *, delta: bool = False, fmt: str = "crl") -> str:
    """``/crl/sign/g1/13101.crl`` (municipality partition), ``/crl/sign/g1/full.crl``,
    ``/crl/sign/g1/arl.crl``; ``-delta`` before the suffix for delta CRLs; ``fmt`` ``crl`` (DER) or ``pem``."""
    suffix = "-delta" if delta else ""
    return f"{CRL_PREFIX}/{kind}/g{generation}/{partition}{suffix}.{fmt}"


def crl_url(base: str, kind: str, generation: int, partition: str = "full", *, delta: bool = False) -> str:
    return base + crl_path(kind, generation, partition, delta=delta)


def cps_url(base: str) -> str:
    return f"{base}/cps"


def ca_cert_url(base: str, kind: str, generation: int, fmt: str = "der") -> str:
    """``/ca/sign-g1.der`` or ``.pem``: one CA generation's certificate, a trust anchor."""
    return f"{base}{CA_PREFIX}/{kind}-g{generation}.{fmt}"
