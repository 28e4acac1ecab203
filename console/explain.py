"""The artefact explainer: any certificate, CRL, OCSP request or response, CMS signature or
PKCS#12 file as an annotated ASN.1 tree with byte offsets.

The tree comes from the project's one DER reader (:func:`jpki_mock.der.read_tlv`), so every
node's offset, header and length are exactly the bytes'; the *names* come from walking the
matching asn1crypto structure beside it (an independent parser: if the two disagree about a
node's bytes, the node keeps its universal type name and no field name).  Nothing is stored.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import algos, cms, core, crl, keys, ocsp, pkcs12, x509
from cryptography.hazmat.primitives.serialization import pkcs12 as pyca_pkcs12

from jpki_mock import der
from jpki_mock.ca import oids
from jpki_mock.errors import InvalidInput

#: the explainer's input limit: an artefact a student pastes, not a national CRL
MAX_INPUT_BYTES = 256 * 1024

UNIVERSAL = {
    0x01: "BOOLEAN", 0x02: "INTEGER", 0x03: "BIT STRING", 0x04: "OCTET STRING", 0x05: "NULL",
    0x06: "OBJECT IDENTIFIER", 0x0A: "ENUMERATED", 0x0C: "UTF8String", 0x10: "SEQUENCE", 0x11: "SET",
    0x13: "PrintableString", 0x14: "TeletexString", 0x16: "IA5String", 0x17: "UTCTime",
    0x18: "GeneralizedTime", 0x1A: "VisibleString", 0x1E: "BMPString",
}

#: the JPKI object identifiers, named as docs/sources.md names them (sections 2-3)
JPKI_OIDS = {
    oids.NAME.dotted_string: "jpki-name (氏名)",
    oids.NAME_FLAGS.dotted_string: "jpki-name-flags (氏名代替文字の使用位置)",
    oids.GENDER.dotted_string: "jpki-gender (性別)",
    oids.DATE_OF_BIRTH.dotted_string: "jpki-date-of-birth (生年月日)",
    oids.ADDRESS.dotted_string: "jpki-address (住所)",
    oids.ADDRESS_FLAGS.dotted_string: "jpki-address-flags (住所代替文字の使用位置)",
    **{oid.dotted_string: f"jpki-policy-{hierarchy}-{kind} ({'署名用' if kind == 'sign' else '利用者証明用'})"
       for (hierarchy, kind), oid in oids.POLICY.items()},
}


def _oid_names() -> dict[str, str]:
    """Every OID asn1crypto names in the modules an explained artefact uses, plus JPKI's."""
    names: dict[str, str] = {}
    for module in (algos, cms, crl, keys, ocsp, pkcs12, x509):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, core.ObjectIdentifier):
                names.update(getattr(value, "_map", None) or {})
    names.update(JPKI_OIDS)
    return names


OID_NAMES = _oid_names()

#: (label, asn1crypto type) in the order the input is tried; the first that parses whole wins
KINDS: tuple[tuple[str, type[core.Asn1Value]], ...] = (
    ("pkcs12", pkcs12.Pfx),
    ("ocsp-response", ocsp.OCSPResponse),
    ("ocsp-request", ocsp.OCSPRequest),
    ("cms", cms.ContentInfo),
    ("certificate", x509.Certificate),
    ("crl", crl.CertificateList),
)


@dataclass
class Node:
    """One TLV: where it is, what it is, and what the structure calls it."""

    offset: int
    header_len: int
    length: int
    tag: int
    type_name: str
    name: str = ""
    value: str = ""
    oid: str = ""
    children: list[Node] = field(default_factory=list)
    #: an OCTET or BIT STRING whose content is itself DER (an extension value, a response)
    encapsulates: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.header_len + self.length

    def walk(self) -> list[Node]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass
class Explained:
    kind: str
    der: bytes
    root: Node
    #: certificates found inside (a PKCS#12's bag, a CMS signature's certificates), each explained
    inner: list[tuple[str, Explained]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- input


_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def decode_input(raw: bytes) -> bytes:
    """PEM, base64 or DER in; DER out.  Errors name what was wrong."""
    if not raw.strip():
        raise InvalidInput("is empty: paste a PEM block, base64 or upload a DER file", field="input")
    if len(raw) > MAX_INPUT_BYTES:
        raise InvalidInput(f"is {len(raw)} bytes", field="input", allowed=f"at most {MAX_INPUT_BYTES} bytes")
    if raw[:1] == b"\x30":
        return raw
    text = raw.strip()
    pem = _PEM.search(text)
    if pem:
        text = pem.group(2)
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"is neither DER (which starts with 0x30), PEM nor base64: {exc}",
                           field="input", allowed="PEM, base64 or DER") from None


# ---------------------------------------------------------------- the byte tree


def _type_name(tag: int) -> str:
    cls = tag >> 6
    number = tag & 0x1F
    if cls == 0:
        return UNIVERSAL.get(number, f"UNIVERSAL {number}")
    prefix = {1: "APPLICATION ", 2: "", 3: "PRIVATE "}[cls]
    return f"[{prefix}{number}]"


def _value(tag: int, content: bytes) -> tuple[str, str]:
    """A primitive's value as text, and its OID if it is one."""
    if tag == der.INTEGER or tag == der.ENUMERATED:
        n = int.from_bytes(content, "big", signed=True)
        return (f"{n}" if n.bit_length() <= 64 else f"0x{content.hex()} ({n.bit_length()} bits)"), ""
    if tag == der.OID:
        dotted = core.ObjectIdentifier.load(der.tlv(der.OID, content)).dotted
        name = OID_NAMES.get(dotted)
        return (f"{dotted} ({name})" if name else dotted), dotted
    if tag == der.BOOLEAN:
        return ("TRUE" if content != b"\x00" else "FALSE"), ""
    if tag == der.NULL:
        return "", ""
    if tag in (0x0C, 0x13, 0x16, 0x1A, 0x17, 0x18):
        return content.decode("utf-8", "replace"), ""
    if tag == 0x1E:
        return content.decode("utf-16-be", "replace"), ""
    if tag == der.BIT_STRING:
        bits = max(0, 8 * (len(content) - 1) - (content[0] if content else 0))
        return f"{bits} bits: {content[1:33].hex(' ')}{' …' if len(content) > 33 else ''}", ""
    return f"{len(content)} bytes: {content[:32].hex(' ')}{' …' if len(content) > 32 else ''}", ""


def _parse(data: bytes, pos: int, end: int, depth: int = 0) -> Node:
    tag, start, stop = der.read_tlv(data, pos, end)
    node = Node(pos, start - pos, stop - start, tag, _type_name(tag))
    if tag & 0x20:
        node.children = [_parse(data, p, stop, depth + 1) for _t, p, _s, _e in der.children(data, start, stop)]
    else:
        node.value, node.oid = _value(tag, data[start:stop])
        inner = start + 1 if tag == der.BIT_STRING else start
        if tag in (der.OCTET_STRING, der.BIT_STRING) and depth < 32 and _is_der(data, inner, stop):
            node.encapsulates = True
            node.children = [_parse(data, inner, stop, depth + 1)]
    return node


def _is_der(data: bytes, start: int, end: int) -> bool:
    """Whether ``data[start:end]`` is exactly one constructed TLV (a nested encoding)."""
    if end - start < 2 or not data[start] & 0x20:
        return False
    try:
        _tag, _s, stop = der.read_tlv(data, start, end)
        return stop == end
    except der.DerError:
        return False


# ---------------------------------------------------------------- names from the structure


def _name(node: Node, value: core.Asn1Value, name: str, data: bytes) -> None:
    """Give ``node`` (whose bytes are ``value.dump()``) the field ``name`` and name its children."""
    if node.type_name.startswith("[") and value.explicit and node.children:
        node.name = f"{name} (explicit tag)"
        node = node.children[0]
    node.name = name
    _typed(node, value)
    _name_inner(node, value, name, data)


def _typed(node: Node, value: core.Asn1Value) -> None:
    spec = type(value).__name__
    if spec.lower() not in node.type_name.replace(" ", "").lower():
        node.type_name = f"{node.type_name} · {spec}"


def _name_inner(node: Node, value: core.Asn1Value, name: str, data: bytes) -> None:
    node.name = node.name or name
    if isinstance(value, core.Choice):
        if value.chosen is not None and not isinstance(value.chosen, core.Void):
            node.name = f"{name}: {value.name}" if value.name else name
            _name_inner(node, value.chosen, node.name, data)
        return
    if isinstance(value, core.Sequence) and value._fields:
        fields = [(f[0], value[f[0]]) for f in value._fields]
        # An extension (RFC 5280 section 4.1.2.9) and an otherName (4.2.1.6) are known by their OID.
        for oid_field in ("extn_id", "type_id"):
            if oid_field in value:
                node.name = f"{node.name} — {OID_NAMES.get(value[oid_field].dotted, value[oid_field].dotted)}"
        _match(node.children, fields, data)
    elif isinstance(value, (core.SequenceOf, core.SetOf)):
        _match(node.children, [(f"[{i}]", item) for i, item in enumerate(value)], data)
    elif isinstance(value, (core.ParsableOctetString, core.ParsableOctetBitString)):
        try:
            parsed = value.parsed
        except (ValueError, TypeError):
            return
        if not isinstance(parsed, core.Asn1Value) or isinstance(parsed, core.Any):
            return
        if not node.encapsulates:
            # A primitive inside (subjectKeyIdentifier's OCTET STRING): the structure says it is DER.
            start = node.offset + node.header_len + (1 if node.tag == der.BIT_STRING else 0)
            try:
                node.children = [_parse(data, start, node.end, 31)]
            except der.DerError:
                return
            node.encapsulates = True
        _name(node.children[0], parsed, "(encapsulated)", data)


def _match(nodes: list[Node], fields: list[tuple[str, Any]], data: bytes) -> None:
    """Pair the present fields with the TLVs in order; an absent OPTIONAL or DEFAULT field is
    skipped because its bytes are not the next TLV's."""
    i = 0
    for fname, fvalue in fields:
        if i >= len(nodes):
            return
        if fvalue is None or isinstance(fvalue, core.Void):
            continue
        node = nodes[i]
        if fvalue.dump() == data[node.offset:node.end]:
            _name(node, fvalue, fname, data)
            i += 1


# ---------------------------------------------------------------- entry points


def explain(raw: bytes, passphrase: str | None = None) -> Explained:
    """Decode ``raw`` (PEM/base64/DER), recognise it, and return its annotated tree."""
    data = decode_input(raw)
    try:
        root = _parse(data, 0, len(data))
    except der.DerError as exc:
        raise InvalidInput(f"is not DER: {exc}", field="input",
                           allowed="DER (X.690 section 10): definite lengths, one-octet tags") from None
    if root.end != len(data):
        raise InvalidInput(f"has {len(data) - root.end} bytes after the first value (offset {root.end})",
                           field="input", allowed="exactly one DER value")
    kind, value = _recognise(data)
    result = Explained(kind, data, root)
    if value is not None:
        _name(root, value, kind, data)
    else:
        result.notes.append("not one of the artefact kinds named here; the tree shows the raw DER")
    if kind == "pkcs12":
        result.inner = _pkcs12_contents(data, passphrase)
    elif kind == "cms" and value is not None:
        result.inner = _cms_certificates(value)
    elif kind == "ocsp-response" and value is not None:
        result.inner = _ocsp_certificates(value)
    return result


def _recognise(data: bytes) -> tuple[str, core.Asn1Value | None]:
    for label, spec in KINDS:
        try:
            value = spec.load(data, strict=True)
            value.native  # noqa: B018 - parses every field: a wrong guess fails here
        except (ValueError, TypeError, KeyError, OverflowError):
            continue
        return label, value
    return "der", None


def _pkcs12_contents(data: bytes, passphrase: str | None) -> list[tuple[str, Explained]]:
    if not passphrase:
        raise InvalidInput("is required to open a PKCS#12 file", field="passphrase")
    try:
        bundle = pyca_pkcs12.load_pkcs12(data, passphrase.encode())
    except ValueError:
        raise InvalidInput("does not open this PKCS#12 file (wrong passphrase, or not PKCS#12)",
                           field="passphrase") from None
    from cryptography.hazmat.primitives.serialization import Encoding

    out: list[tuple[str, Explained]] = []
    certs = ([bundle.cert] if bundle.cert else []) + list(bundle.additional_certs)
    for i, cert in enumerate(certs):
        out.append((f"certificate {i + 1} ({cert.certificate.subject.rfc4514_string()})",
                    explain(cert.certificate.public_bytes(Encoding.DER))))
    return out


def _cms_certificates(value: core.Asn1Value) -> list[tuple[str, Explained]]:
    content = value["content"]
    certs = content["certificates"] if isinstance(content, cms.SignedData) else None
    if not certs:
        return []
    return [(f"signer certificate {i + 1}", explain(c.chosen.dump())) for i, c in enumerate(certs)]


def _ocsp_certificates(value: core.Asn1Value) -> list[tuple[str, Explained]]:
    basic = value["response_bytes"]["response"].parsed if value["response_bytes"] else None
    if basic is None or not basic["certs"]:
        return []
    return [(f"responder certificate {i + 1}", explain(c.dump())) for i, c in enumerate(basic["certs"])]


def key_summary(data: bytes, passphrase: str) -> str:
    """What a PKCS#12's private key is (algorithm and size), never the key itself."""
    bundle = pyca_pkcs12.load_pkcs12(data, passphrase.encode())
    key = bundle.key
    return "none" if key is None else f"{type(key).__name__.lstrip('_')} {getattr(key, 'key_size', '')}".strip()
