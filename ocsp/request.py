"""Decoding OCSP requests (RFC 6960 section 4.1) from POST bodies and GET paths.

Every CertID of the request is kept with its own hash algorithm and its DER exactly as
sent, because the response echoes it byte for byte (clients match on it).  The nonce
extension (RFC 9654) is kept as the whole Extension DER so it can be echoed exactly too.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote

from jpki_mock import der
from jpki_mock.der import OCTET_STRING, SEQUENCE, DerError
from jpki_mock.errors import MalformedData

#: CertID hash algorithms answered (RFC 9919 recommends SHA-256, RFC 5019 used SHA-1).
HASH_OIDS = {
    der.oid("1.3.14.3.2.26")[2:]: "sha1",
    der.oid("2.16.840.1.101.3.4.2.1")[2:]: "sha256",
    der.oid("2.16.840.1.101.3.4.2.2")[2:]: "sha384",
    der.oid("2.16.840.1.101.3.4.2.3")[2:]: "sha512",
}
HASH_LENGTHS = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
NONCE_OID = der.oid("1.3.6.1.5.5.7.48.1.2")[2:]
#: RFC 6960 section 4.4.3: the client says which response types it accepts; we only make basic.
ACCEPTABLE_RESPONSES_OID = der.oid("1.3.6.1.5.5.7.48.1.4")[2:]
BASIC_RESPONSE_OID = der.oid("1.3.6.1.5.5.7.48.1.1")
#: RFC 9654 section 2.1: a nonce is 1..128 octets; longer MUST be rejected with malformedRequest.
MAX_NONCE = 128
#: where a nonce sits: (Extension start, Extension end, nonce start, nonce end)
NonceSpan = tuple[int, int, int, int]


class MalformedRequest(MalformedData):
    """The request cannot be answered as sent: OCSP malformedRequest, HTTP 400."""

    code = "malformed_request"


@dataclass(frozen=True, slots=True)
class CertID:
    der: bytes
    #: sha1/sha256/sha384/sha512, or None for a hash algorithm this responder does not answer
    algorithm: str | None
    name_hash: bytes
    key_hash: bytes
    serial: int


class OcspRequest(NamedTuple):
    # A NamedTuple, not a frozen dataclass: one is made per request, and a frozen dataclass's
    # __init__ (object.__setattr__ per field) costs several times a tuple's.
    cert_ids: tuple[CertID, ...]
    #: the nonce Extension (whole DER, echoed exactly) and its value, or None
    nonce_extension: bytes | None = None
    nonce: bytes | None = None
    #: the CA generation that issued every CertID's certificate (a jpki_mock.ca.status.Issuer):
    #: None as decoded, set by the filter source (ocsp/filter.py) for the sources after it
    issuer: Any = None


#: CertID DER -> parsed CertID.  A client asks about the same certificates again and again,
#: and a nonced request differs from the last one only in its nonce: parsing a CertID once
#: saves a third of the decoding.  Bounded like the responder's other per-process maps, and
#: outside the cache budget (``ocsp.cache_mb``), so small: an entry with its key costs about 525
#: bytes (RSS over 60,000 first lookups), so at most 8.6 MB a worker; at 100,000 a national-scale
#: run grew a worker by 50 MB past its budget.  It holds a load test's hot set.
_CERT_IDS: dict[bytes, CertID] = {}
MAX_CACHED_CERT_IDS = 16_384


def _cert_id(data: bytes, tlv_start: int, start: int, end: int) -> CertID:
    raw = bytes(data[tlv_start:end])
    hit = _CERT_IDS.get(raw)
    if hit is not None:
        return hit
    cid = _parse_cert_id(data, tlv_start, start, end)
    if len(_CERT_IDS) >= MAX_CACHED_CERT_IDS:
        _CERT_IDS.clear()
    _CERT_IDS[raw] = cid
    return cid


def _parse_cert_id(data: bytes, tlv_start: int, start: int, end: int) -> CertID:
    parts = der.children(data, start, end)
    if len(parts) != 4 or [p[0] for p in parts] != [SEQUENCE, OCTET_STRING, OCTET_STRING, der.INTEGER]:
        raise DerError("CertID must be SEQUENCE {hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber}")
    alg = der.children(data, parts[0][2], parts[0][3])
    if not alg or alg[0][0] != der.OID or len(alg) > 2:
        raise DerError("CertID hashAlgorithm is not an AlgorithmIdentifier")
    algorithm = HASH_OIDS.get(data[alg[0][2]:alg[0][3]])
    # RFC 5754 section 2: hash AlgorithmIdentifiers carry absent or NULL parameters.
    if len(alg) == 2 and data[alg[1][1]:alg[1][3]] != b"\x05\x00":
        algorithm = None
    name_hash = data[parts[1][2]:parts[1][3]]
    key_hash = data[parts[2][2]:parts[2][3]]
    if algorithm is not None and not (len(name_hash) == len(key_hash) == HASH_LENGTHS[algorithm]):
        raise DerError(f"CertID hashes are not {HASH_LENGTHS[algorithm]} octets long as {algorithm} requires")
    serial = der.parse_integer(data, parts[3][2], parts[3][3], "CertID serialNumber")
    return CertID(bytes(data[tlv_start:end]), algorithm, bytes(name_hash), bytes(key_hash), serial)


def _extensions(data: bytes, start: int, end: int) -> tuple[bytes | None, bytes | None, NonceSpan | None]:
    """requestExtensions: returns (nonce Extension DER, nonce value, where they are).

    "Where" is (Extension start, Extension end, value start, value end) when the nonce is an
    OCTET STRING inside extnValue as RFC 9654 asks, whose content octets may be anything;
    None otherwise."""
    s, e = der.expect(data, start, end, SEQUENCE, "requestExtensions")
    if s == e:
        raise DerError("requestExtensions must not be empty (RFC 5280 section 4.1: SIZE (1..MAX))")
    seen: set[bytes] = set()
    nonce_ext = nonce = span = None
    for tag, tlv_start, cs, ce in der.children(data, s, e):
        if tag != SEQUENCE:
            raise DerError("an Extension must be a SEQUENCE")
        fields = der.children(data, cs, ce)
        if len(fields) not in (2, 3) or fields[0][0] != der.OID or fields[-1][0] != OCTET_STRING:
            raise DerError("an Extension must be SEQUENCE {extnID, critical BOOLEAN DEFAULT FALSE, extnValue}")
        critical = False
        if len(fields) == 3:
            if fields[1][0] != der.BOOLEAN or fields[1][3] - fields[1][2] != 1 or data[fields[1][2]] not in (0, 0xFF):
                raise DerError("Extension critical flag is not a BOOLEAN")
            critical = data[fields[1][2]] == 0xFF
        ext_oid = bytes(data[fields[0][2]:fields[0][3]])
        if ext_oid in seen:
            raise DerError("an extension appears twice (RFC 5280 section 4.2)")
        seen.add(ext_oid)
        vs, ve = fields[-1][2], fields[-1][3]
        if ext_oid == NONCE_OID:
            # RFC 9654: extnValue holds Nonce ::= OCTET STRING.  Some clients put the raw bytes
            # in extnValue without the inner OCTET STRING (pyca/cryptography#6404); accept both.
            value = bytes(data[vs:ve])
            try:
                ns, ne = der.expect(data, vs, ve, OCTET_STRING, "nonce")
                if ne == ve:
                    value = bytes(data[ns:ne])
                    span = (tlv_start, ce, ns, ne)
            except DerError:
                pass
            if not 1 <= len(value) <= MAX_NONCE:
                raise MalformedRequest(f"the nonce is {len(value)} octets long", field="nonce",
                                       allowed=f"1-{MAX_NONCE} octets (RFC 9654 section 2.1)")
            nonce_ext, nonce = bytes(data[tlv_start:ce]), value
        elif ext_oid == ACCEPTABLE_RESPONSES_OID:
            if BASIC_RESPONSE_OID not in data[vs:ve]:
                raise MalformedRequest("the client does not accept id-pkix-ocsp-basic responses",
                                       field="acceptableResponses", allowed="id-pkix-ocsp-basic")
        elif critical:
            raise MalformedRequest(f"unsupported critical extension {ext_oid.hex()}", field="requestExtensions",
                                   allowed="nonce, acceptable responses, or non-critical extensions")
    return nonce_ext, nonce, span


class Shape:
    """A nonced request already parsed, minus its nonce octets: what the next request that
    differs from it only there is made of.  ``data[ext_start:ext_end]`` of such a request is
    its nonce Extension, ``data[nonce_start:nonce_end]`` the nonce."""

    __slots__ = ("cert_ids", "ext_end", "ext_start", "nonce_end", "nonce_start", "suffix")

    def __init__(self, suffix: bytes, cert_ids: tuple[CertID, ...], ext_start: int, ext_end: int, nonce_start: int,
                 nonce_end: int):
        self.suffix = suffix
        self.cert_ids = cert_ids
        self.ext_start = ext_start
        self.ext_end = ext_end
        self.nonce_start = nonce_start
        self.nonce_end = nonce_end


#: Nonced requests by size: [(nonce start, nonce end, {bytes before the nonce: Shape})].
#: A client asking about a certificate again sends the same bytes with fresh nonce octets
#: (RFC 9654 section 2.1).  Those octets are the content of an OCTET STRING whose header,
#: like every other byte, equals that of a request parsed and checked in full before, so the
#: new request is valid DER of the same structure and its parse is two slices and a lookup.
_SHAPES: dict[int, list[tuple[int, int, dict[bytes, Shape]]]] = {}
#: where nonces sit differs by client and CertID hash algorithm, not by certificate: a few
#: places per size cover every client seen; more than that are parsed in full.
MAX_SHAPES_PER_SIZE = 4
MAX_SHAPES = 100_000
#: item 0: the shapes remembered since _SHAPES was last cleared
_shape_count = [0]


def known_shape(data: bytes) -> Shape | None:
    """The shape of a nonced request parsed before that ``data`` has, differing at most in its
    nonce octets (so ``data`` is a valid request: see _SHAPES), or None."""
    shapes = _SHAPES.get(len(data))
    if shapes is not None:
        for ns, ne, table in shapes:
            hit = table.get(data[:ns])
            if hit is not None and data[ne:] == hit.suffix:
                return hit
    return None


def parse_request(data: bytes, max_certids: int = 100) -> OcspRequest:
    """Parse DER ``OCSPRequest``; raises :class:`MalformedRequest` with the reason."""
    hit = known_shape(data)
    if hit is not None and len(hit.cert_ids) <= max_certids:
        return OcspRequest(hit.cert_ids, data[hit.ext_start:hit.ext_end], data[hit.nonce_start:hit.nonce_end])
    try:
        req, span = _parse(data, max_certids)
    except DerError as exc:
        raise MalformedRequest(f"not a DER OCSPRequest: {exc}", field="request") from None
    if span is not None:
        _remember_shape(bytes(data), span, req.cert_ids)
    return req


def _remember_shape(data: bytes, span: NonceSpan, cert_ids: tuple[CertID, ...]) -> None:
    ext_start, ext_end, ns, ne = span
    if _shape_count[0] >= MAX_SHAPES:
        _SHAPES.clear()
        _shape_count[0] = 0
    shapes = _SHAPES.setdefault(len(data), [])
    table = next((t for s, e, t in shapes if (s, e) == (ns, ne)), None)
    if table is None:
        if len(shapes) >= MAX_SHAPES_PER_SIZE:
            return
        table = {}
        shapes.append((ns, ne, table))
    table[data[:ns]] = Shape(data[ne:], cert_ids, ext_start, ext_end, ns, ne)
    _shape_count[0] += 1


def _parse(data: bytes, max_certids: int) -> tuple[OcspRequest, NonceSpan | None]:
    """The request, and where its nonce is (see :func:`_extensions`)."""
    end = len(data)
    s, e = der.expect(data, 0, end, SEQUENCE, "OCSPRequest")
    if e != end:
        raise DerError(f"{end - e} bytes after the OCSPRequest")
    top = der.children(data, s, e)
    if not top or top[0][0] != SEQUENCE or len(top) > 2 or (len(top) == 2 and top[1][0] != 0xA0):
        raise DerError("OCSPRequest must be SEQUENCE {tbsRequest, [0] optionalSignature}")
    fields = der.children(data, top[0][2], top[0][3])
    i = 0
    if i < len(fields) and fields[i][0] == 0xA0:  # version [0] EXPLICIT, only v1 (0) exists
        vs, ve = der.expect(data, fields[i][2], fields[i][3], der.INTEGER, "version")
        if ve != fields[i][3] or der.parse_integer(data, vs, ve, "version") != 0:
            raise DerError("unsupported TBSRequest version (only v1)")
        i += 1
    if i < len(fields) and fields[i][0] == 0xA1:  # requestorName: informational only
        i += 1
    if i >= len(fields) or fields[i][0] != SEQUENCE:
        raise DerError("TBSRequest has no requestList")
    request_list = der.children(data, fields[i][2], fields[i][3])
    i += 1
    nonce_ext = nonce = span = None
    if i < len(fields) and fields[i][0] == 0xA2:
        nonce_ext, nonce, span = _extensions(data, fields[i][2], fields[i][3])
        i += 1
    if i != len(fields):
        raise DerError("unexpected fields in TBSRequest")
    if not request_list:
        raise DerError("requestList is empty")
    if len(request_list) > max_certids:
        raise MalformedRequest(f"{len(request_list)} CertIDs in one request", field="requestList",
                               allowed=f"1-{max_certids} (ocsp.max_certids)")
    cert_ids = []
    for tag, _, rs, re_ in request_list:
        if tag != SEQUENCE:
            raise DerError("a Request must be a SEQUENCE")
        parts = der.children(data, rs, re_)
        # Request ::= SEQUENCE {reqCert CertID, singleRequestExtensions [0] EXPLICIT OPTIONAL}
        if not parts or parts[0][0] != SEQUENCE or len(parts) > 2 or (len(parts) == 2 and parts[1][0] != 0xA0):
            raise DerError("Request must be SEQUENCE {reqCert, [0] singleRequestExtensions}")
        cert_ids.append(_cert_id(data, parts[0][1], parts[0][2], parts[0][3]))
    # A signed request (optionalSignature) signs the nonce too: not a shape to reuse.
    return OcspRequest(tuple(cert_ids), nonce_ext, nonce), span if len(top) == 1 else None


def decode_get_path(path: str) -> bytes:
    """The DER request from a GET path (RFC 6960 appendix A.1), decoded tolerantly.

    Clients and proxies mangle the base64 (docs/sources.md section 7): percent-encoding left in place or
    doubled, ``+`` turned into a space, a leading ``/`` (or ``//`` from a base URL ending in
    ``/``), base64url, missing padding.  A DER OCSPRequest starts with 0x30, so its base64
    starts with ``M``: every leading ``/`` is a separator and can go.  ``//`` *inside* the
    base64 is data and must not be merged (Boulder#884).
    """
    text = path.lstrip("/")
    for _ in range(3):  # base64 has no '%': any left is escaping, possibly applied twice by proxies
        if "%" not in text:
            break
        text = unquote(text)
    text = text.replace(" ", "+").replace("-", "+").replace("_", "/").rstrip("=")
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRequest(
            "the GET path is not a base64-encoded OCSP request", field="path",
            allowed="/<base64 or base64url of the DER OCSPRequest> (RFC 6960 appendix A.1)") from None
