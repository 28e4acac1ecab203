"""Parsing CRLs back with asn1crypto, an implementation independent of the writer."""

from __future__ import annotations

from asn1crypto import crl as acrl


def parse(data: bytes) -> acrl.CertificateList:
    return acrl.CertificateList.load(data)


def entries(data: bytes) -> dict[int, str]:
    """serial -> reason name ('unspecified' when the entry has no reasonCode), via asn1crypto."""
    out = {}
    for rc in parse(data)["tbs_cert_list"]["revoked_certificates"]:
        reason = rc.crl_reason_value
        out[rc["user_certificate"].native] = reason.native if reason is not None else "unspecified"
    return out
