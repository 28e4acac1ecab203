"""Encoding OCSP responses (RFC 6960 section 4.2) directly as DER.

Only the parts that change are built per response; the rest are constants.  A response
with one SingleResponse and no nonce does not depend on the request beyond its CertID, so
it is signed once and served as bytes until it is refreshed (:mod:`ocsp.source`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
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


@lru_cache(maxsize=65536)
def revoked(revoked_at: datetime | None, reason: int | None) -> bytes:
    """[1] IMPLICIT RevokedInfo {revocationTime, [0] EXPLICIT CRLReason OPTIONAL}."""
    when = der.generalized_time(revoked_at) if revoked_at is not None else tlv(der.GENERALIZED_TIME, EPOCH_1970)
    body = when if reason is None else when + tlv(0xA0, tlv(ENUMERATED, bytes((reason,))))
    return tlv(0xA1, body)


def single_response(cert_id_der: bytes, status: bytes, this_update: bytes, next_update: bytes) -> bytes:
    """SingleResponse; ``this_update``/``next_update`` are encoded GeneralizedTimes."""
    return seq(cert_id_der, status, this_update, tlv(0xA0, next_update))


def one_response(cert_id_der: bytes, status: bytes, this_update: bytes, next_update_explicit: bytes) -> bytes:
    """``responses``, a SEQUENCE OF one SingleResponse, for the nonced path: the same octets
    as ``seq(single_response(...))`` with ``next_update_explicit`` already wrapped in [0]."""
    body = cert_id_der + status + this_update + next_update_explicit
    n = len(body)  # short form up to 127 octets: a SHA-1 CertID's SingleResponse fits
    single = (bytes((0x30, n)) if n < 0x80 else der.header(der.SEQUENCE, n)) + body
    n = len(single)
    return (bytes((0x30, n)) if n < 0x80 else der.header(der.SEQUENCE, n)) + single


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


def response_head(signer: ResponderSigner, produced_at: bytes, singles: Sequence[bytes]) -> bytes:
    """ResponseData up to its extensions: responderID, producedAt (an encoded GeneralizedTime,
    :class:`TimeCache`) and the SingleResponses (none: the caller appends ``responses``)."""
    head = _signer_parts(signer)[0] + produced_at
    return head + seq(*singles) if singles else head


#: (signer id, length of the ResponseData head, of its extensions) -> _Wrap: the octets around
#: them and around the signature are the same for every answer of those sizes, so built once.
_WRAPS: dict[tuple[int, int, int], "_Wrap"] = {}


class _Wrap:
    __slots__ = ("signer", "data_head", "extensions_head", "before", "middle", "signature_length")

    def __init__(self, signer, data_head, extensions_head, before, middle, signature_length):
        self.signer = signer
        #: ResponseData's SEQUENCE header
        self.data_head = data_head
        #: [1] EXPLICIT SEQUENCE OF Extension headers (empty without extensions)
        self.extensions_head = extensions_head
        #: OCSPResponse ... BasicOCSPResponse headers, up to ResponseData
        self.before = before
        #: signatureAlgorithm and the signature BIT STRING header
        self.middle = middle
        self.signature_length = signature_length


def sign_response(signer: ResponderSigner, head: bytes, extensions: bytes = b"") -> bytes:
    """Sign ResponseData (``head`` from :func:`response_head`, ``extensions`` the Extension
    DERs one after the other) and wrap it into a complete, successful OCSPResponse."""
    key = (id(signer), len(head), len(extensions))
    wrap = _WRAPS.get(key)
    if wrap is None or wrap.signer is not signer:
        wrap = _wrap(signer, key)
    response_data = wrap.data_head + head + wrap.extensions_head + extensions
    signature = signer.sign(response_data)
    if len(signature) != wrap.signature_length:  # not an RSA key of the expected size: wrap anew
        wrap = _wrap(signer, key, len(signature))
    return wrap.before + response_data + wrap.middle + signature + _signer_parts(signer)[1]


def _wrap(signer: ResponderSigner, key: tuple[int, int, int], sig_len: int | None = None) -> _Wrap:
    _, head_len, ext_len = key
    if sig_len is None:  # PKCS#1 v1.5: the signature is exactly as long as the modulus
        sig_len = (signer.certificate.public_key().key_size + 7) // 8
    extensions_head = b""
    if ext_len:
        inner = der.header(der.SEQUENCE, ext_len)
        extensions_head = der.header(0xA1, len(inner) + ext_len) + inner
    n = head_len + len(extensions_head) + ext_len
    data_head = der.header(der.SEQUENCE, n)
    data_len = len(data_head) + n
    certs = _signer_parts(signer)[1]
    # BasicOCSPResponse {tbsResponseData, signatureAlgorithm, signature BIT STRING, [0] certs}
    bit_string = der.header(der.BIT_STRING, 1 + sig_len) + b"\x00"
    n = data_len + len(signer.algorithm_der) + len(bit_string) + sig_len + len(certs)
    basic = der.header(der.SEQUENCE, n)
    # OCSPResponse {responseStatus successful, [0] EXPLICIT ResponseBytes {id-pkix-ocsp-basic, OCTET STRING}}
    n += len(basic)
    octets = der.header(OCTET_STRING, n)
    inner = len(BASIC_TYPE) + len(octets) + n
    seq_head = der.header(der.SEQUENCE, inner)
    explicit = der.header(0xA0, len(seq_head) + inner)
    before = (der.header(der.SEQUENCE, 3 + len(explicit) + len(seq_head) + inner) + b"\x0a\x01\x00" + explicit
              + seq_head + BASIC_TYPE + octets + basic)
    if len(_WRAPS) > 1024:
        _WRAPS.clear()
    wrap = _WRAPS[key] = _Wrap(signer, data_head, extensions_head, before, signer.algorithm_der + bit_string, sig_len)
    return wrap
