"""Encoding OCSP responses (RFC 6960 section 4.2) directly as DER.

Only the parts that change are built per response; the rest are constants.  A response
with one SingleResponse and no nonce does not depend on the request beyond its CertID, so
it is signed once and served as bytes until it is refreshed (:mod:`ocsp.source`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from ca.signer import ResponderSigner

from . import der
from .der import ENUMERATED, OCTET_STRING, seq, tlv

# OCSPResponseStatus (RFC 6960 section 4.2.1); 4 is not used.
SUCCESSFUL, MALFORMED_REQUEST, INTERNAL_ERROR, TRY_LATER, SIG_REQUIRED, UNAUTHORIZED = 0, 1, 2, 3, 5, 6
STATUS_NAMES = {0: "successful", 1: "malformedRequest", 2: "internalError", 3: "tryLater", 5: "sigRequired",
                6: "unauthorized"}

BASIC_TYPE = der.oid("1.3.6.1.5.5.7.48.1.1")
#: RFC 6960 section 4.4.8: "revoked" also covers certificates that were never issued.
EXTENDED_REVOKE_EXTENSION = seq(der.oid("1.3.6.1.5.5.7.48.1.9"), tlv(OCTET_STRING, b"\x05\x00"))
#: RFC 6960 section 2.2: a never-issued serial reported as revoked uses this time and certificateHold.
EPOCH_1970 = datetime(1970, 1, 1).strftime("%Y%m%d%H%M%SZ").encode()

GOOD = b"\x80\x00"  # [0] IMPLICIT NULL
UNKNOWN = b"\x82\x00"  # [2] IMPLICIT UnknownInfo (NULL)


def error_response(status: int) -> bytes:
    """An OCSPResponse without responseBytes (every status except successful)."""
    return seq(tlv(ENUMERATED, bytes((status,))))


def revoked(revoked_at: datetime | None, reason: int | None) -> bytes:
    """[1] IMPLICIT RevokedInfo {revocationTime, [0] EXPLICIT CRLReason OPTIONAL}."""
    when = der.generalized_time(revoked_at) if revoked_at is not None else tlv(der.GENERALIZED_TIME, EPOCH_1970)
    body = when if reason is None else when + tlv(0xA0, tlv(ENUMERATED, bytes((reason,))))
    return tlv(0xA1, body)


def single_response(cert_id_der: bytes, status: bytes, this_update: bytes, next_update: bytes) -> bytes:
    """SingleResponse; ``this_update``/``next_update`` are encoded GeneralizedTimes."""
    return seq(cert_id_der, status, this_update, tlv(0xA0, next_update))


class TimeCache:
    """GeneralizedTime encodings of the current second (strftime costs more than the rest of the DER)."""

    __slots__ = ("_key", "_value")

    def __init__(self):
        self._key: datetime | None = None
        self._value: tuple[bytes, bytes, bytes] = (b"", b"", b"")

    def times(self, now: datetime, backdate: timedelta, validity: timedelta) -> tuple[bytes, bytes, bytes]:
        """(producedAt, thisUpdate, nextUpdate) for ``now``."""
        if now != self._key:
            this_update = now - backdate
            value = (der.generalized_time(now), der.generalized_time(this_update),
                     der.generalized_time(this_update + validity))
            self._key, self._value = now, value
        return self._value


_SIGNER_PARTS: dict[int, tuple[ResponderSigner, bytes, bytes]] = {}


def _signer_parts(signer: ResponderSigner) -> tuple[bytes, bytes]:
    """(ResponderID, certs field) of a signer, encoded once."""
    hit = _SIGNER_PARTS.get(id(signer))
    if hit is None or hit[0] is not signer:
        # ResponderID byKey [2] EXPLICIT KeyHash: SHA-1 of the signer's key BIT STRING (section 4.2.2.3).
        responder_id = tlv(0xA2, tlv(OCTET_STRING, signer.key_hash))
        certs = tlv(0xA0, seq(signer.certificate_der)) if signer.certificate_der else b""
        if len(_SIGNER_PARTS) > 64:
            _SIGNER_PARTS.clear()
        hit = _SIGNER_PARTS[id(signer)] = (signer, responder_id, certs)
    return hit[1], hit[2]


def basic_response(signer: ResponderSigner, produced_at: bytes, singles: Sequence[bytes],
                   extensions: Sequence[bytes] = ()) -> bytes:
    """Sign ResponseData and wrap it into a complete, successful OCSPResponse.

    ``produced_at`` is an encoded GeneralizedTime (:class:`TimeCache`).  Every live-signed
    answer passes here, so the wrapping is written out with one header per layer."""
    responder_id, certs = _signer_parts(signer)
    body = responder_id + produced_at + seq(*singles)
    if extensions:
        body += tlv(0xA1, seq(*extensions))
    response_data = tlv(der.SEQUENCE, body)
    signature = signer.sign(response_data)
    # BasicOCSPResponse {tbsResponseData, signatureAlgorithm, signature BIT STRING, [0] certs}
    basic = tlv(der.SEQUENCE, response_data + signer.algorithm_der + tlv(der.BIT_STRING, b"\x00" + signature) + certs)
    # OCSPResponse {responseStatus successful, [0] EXPLICIT ResponseBytes {id-pkix-ocsp-basic, OCTET STRING}}
    n = len(basic)
    octets = der.header(OCTET_STRING, n)
    inner = len(BASIC_TYPE) + len(octets) + n
    seq_head = der.header(der.SEQUENCE, inner)
    explicit = der.header(0xA0, len(seq_head) + inner)
    return (der.header(der.SEQUENCE, 3 + len(explicit) + len(seq_head) + inner) + b"\x0a\x01\x00" + explicit
            + seq_head + BASIC_TYPE + octets + basic)

