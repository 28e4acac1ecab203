"""Public pages, one Flask blueprint registered at the root by the composition root.

Nothing here needs the admin token: it serves what a relying party must be able to fetch
before it trusts anything (the CA certificates, docs/sources.md section 2: every generation
under the same DN, so a verifier must hold each of them).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from jpki_mock import urls as u
from jpki_mock.ca.status import Issuer, StatusReader
from jpki_mock.config import Config
from jpki_mock.errors import NotFound
from jpki_mock.web import runtime

bp = Blueprint("public", __name__)

CPS_TEXT = """jpki-mock certification practice statement (mock)

These certificates come from jpki-mock, a test double of Japan's JPKI. They certify nothing
about anyone: every name, address and key is test data. Do not trust them outside tests.
"""

#: media types of a certificate download (RFC 2585 section 4.1 for DER; PEM as text)
MEDIA = {"der": "application/pkix-cert", "pem": "application/x-pem-file"}


def service_urls(config: Config, status: StatusReader) -> dict[str, Any]:
    """The service's public URLs: what ``/`` answers and ``make run`` prints."""
    base = config.public_url
    out: dict[str, Any] = {"service": "jpki-mock", "admin_api": base + "/admin/api", "ocsp": u.ocsp_url(base),
                           "cps": u.cps_url(base), "metrics": base + "/metrics", "healthz": base + "/healthz",
                           "readyz": base + "/readyz", "ca_certificates": {}, "crls": {}}
    if status.store.is_initialised():
        for i in status.issuers():
            out["ca_certificates"][i.label] = {fmt: u.ca_cert_url(base, i.kind, i.generation, fmt) for fmt in MEDIA}
            out["crls"][i.label] = {"full": u.crl_url(base, i.kind, i.generation),
                                    "arl": u.crl_url(base, i.kind, i.generation, "arl")}
    return out


@bp.get("/")
def index() -> Response:
    rt = runtime()
    return jsonify(service_urls(rt.config, rt.status))


@bp.get("/cps")
def cps() -> Response:
    return Response(CPS_TEXT, mimetype="text/plain; charset=utf-8")


def _issuer(status: StatusReader, kind: str, generation: int) -> Issuer:
    for issuer in status.issuers():
        if issuer.kind == kind and issuer.generation == generation:
            return issuer
    raise NotFound(f"no {kind} CA generation {generation}", field="path",
                   allowed=[i.label for i in status.issuers()])


@bp.get(f"{u.CA_PREFIX}/<kind>-g<int:generation>.<fmt>")
def ca_certificate(kind: str, generation: int, fmt: str) -> Response:
    """One CA generation's self-signed certificate, DER or PEM; stable for the life of the key."""
    if fmt not in MEDIA:
        raise NotFound(f"no .{fmt} form of a CA certificate", field="path", allowed=[f".{f}" for f in MEDIA])
    issuer = _issuer(runtime().status, kind, generation)
    resp = Response(issuer.der if fmt == "der" else issuer.pem, mimetype=MEDIA[fmt])
    name = f"{kind}-g{generation}.{'cer' if fmt == 'der' else 'pem'}"
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp
