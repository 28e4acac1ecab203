"""Encoding OCSP responses (RFC 6960 section 4.2) directly as DER.

Only the parts that change are built per response; the rest are constants.  A response
with one SingleResponse and no nonce does not depend on the request beyond its CertID, so
it is signed once and served as bytes until it is refreshed (:mod:`ocsp.presigned`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from jpki_mock import der
from jpki_mock.ca.signer import ResponderSigner
from jpki_mock.der import ENUMERATED, OCTET_STRING, seq, tlv

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


#: A national population has about as many revocation times as revoked certificates, so this cache
#: fills with one-off entries: at 65,536 (143 bytes each, tracemalloc) it grew a worker by about
#: 6 MB over a million first lookups, outside the answer cache's budget.  A few hundred cover a
#: burst of live answers (nonced requests) about the same certificates.
REVOKED_INFO_CACHE = 1024


@lru_cache(maxsize=REVOKED_INFO_CACHE)
def revoked(revoked_at: datetime | None, reason: int | None) -> bytes:
    """[1] IMPLICIT RevokedInfo {revocationTime, [0] EXPLICIT CRLReason OPTIONAL}."""
    when = der.generalized_time(revoked_at) if revoked_at is not None else tlv(der.GENERALIZED_TIME, EPOCH_1970)
    body = when if reason is None else when + tlv(0xA0, tlv(ENUMERATED, bytes((reason,))))
    return tlv(0xA1, body)


def single_response(cert_id_der: bytes, status: bytes, this_update: bytes, next_update_explicit: bytes) -> bytes:
    """SingleResponse; ``this_update`` is an encoded GeneralizedTime, ``next_update_explicit``
    one already wrapped in its [0] EXPLICIT tag (:func:`times`)."""
    return seq(cert_id_der, status, this_update, next_update_explicit)


def times(now: datetime, backdate: timedelta, validity: timedelta) -> tuple[bytes, bytes, bytes]:
    """(producedAt, thisUpdate, [0] EXPLICIT nextUpdate) as encoded GeneralizedTimes: thisUpdate
    backdated by ``backdate``, nextUpdate ``validity`` after it.  Built once a second per issuer
    (ocsp.live.LiveFrame)."""
    this_update = now - backdate
    return (der.generalized_time(now), der.generalized_time(this_update),
            tlv(0xA0, der.generalized_time(this_update + validity)))


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


def response_head(signer: ResponderSigner, produced_at: bytes) -> bytes:
    """ResponseData up to its responses: responderID and producedAt (an encoded
    GeneralizedTime, :func:`times`)."""
    return _signer_parts(signer)[0] + produced_at


#: (signer id, ResponseData length, signature length) -> (signer, the octets before ResponseData,
#: those between it and the signature, those after the signature: the certs field): the same
#: for every answer of those sizes, so built once.
_WRAPS: dict[tuple[int, int, int], tuple[ResponderSigner, bytes, bytes, bytes]] = {}


def sign_response(signer: ResponderSigner, head: bytes, extensions: bytes = b"") -> bytes:
    """Sign ResponseData (``head``: :func:`response_head` and the responses; ``extensions``: the
    Extension DERs one after the other) and wrap it into a complete, successful OCSPResponse."""
    sizes = (len(head), len(extensions))
    heads = _DATA_HEADS.get(sizes) or _data_heads(sizes)
    response_data = heads[0] + head + heads[1] + extensions
    signature = signer.sign(response_data)
    key = (id(signer), len(response_data), len(signature))
    wrap = _WRAPS.get(key)
    if wrap is None or wrap[0] is not signer:
        wrap = _wrap(signer, key)
    return wrap[1] + response_data + wrap[2] + signature + wrap[3]


#: (head length, extensions length) -> (ResponseData's SEQUENCE header, the [1] EXPLICIT
#: SEQUENCE OF Extension headers or nothing): three headers for the price of one lookup.
_DATA_HEADS: dict[tuple[int, int], tuple[bytes, bytes]] = {}


def _data_heads(sizes: tuple[int, int]) -> tuple[bytes, bytes]:
    head_len, ext_len = sizes
    extensions_head = b""
    if ext_len:
        inner = der.header(der.SEQUENCE, ext_len)
        extensions_head = der.header(0xA1, len(inner) + ext_len) + inner
    if len(_DATA_HEADS) > 4096:
        _DATA_HEADS.clear()
    heads = _DATA_HEADS[sizes] = (der.header(der.SEQUENCE, head_len + len(extensions_head) + ext_len), extensions_head)
    return heads


def _wrap(signer: ResponderSigner, key: tuple[int, int, int]) -> tuple[ResponderSigner, bytes, bytes, bytes]:
    _, data_len, sig_len = key
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
    wrap = _WRAPS[key] = (signer, before, signer.algorithm_der + bit_string, certs)
    return wrap
