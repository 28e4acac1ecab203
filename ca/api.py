"""The JSON admin API (Flask).  Every route requires ``Authorization: Bearer <token>``.

Errors from the domain tree are translated here, and only here, to HTTP: 400 invalid input,
401 missing/bad token, 403 forbidden, 404 not found, 409 illegal state change, 413 too
large, 503 overloaded / storage down.  Nothing else escapes as a bare 500 or a traceback.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify

from jpki_mock import errors
from jpki_mock.access import RelyingParty
from jpki_mock.ca.certificates import MAX_EXPIRY_DAYS
from jpki_mock.ca.events import EVENT_FIELDS
from jpki_mock.ca.holders import HOLDER_FIELDS
from jpki_mock.ca.inputs import BOTH, generation_of, whole_number
from jpki_mock.ca.issuance import ISSUE_FIELDS, Issued, der_to_pem
from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.ca.status import REASON_NAMES
from jpki_mock.vocab import HolderEvent, Reason
from jpki_mock.web import args_dict, body, iso, runtime

log = logging.getLogger("jpki_mock.api")

bp = Blueprint("admin", __name__)


def holder_json(h: Holder, with_certs: bool = False) -> dict[str, Any]:
    out = {
        "id": h.id, "name": h.name, "date_of_birth": h.date_of_birth, "gender": h.gender, "address": h.address,
        "name_flags": h.name_flags, "address_flags": h.address_flags, "municipality": h.municipality,
        "card_expiry": h.card_expiry.isoformat(), "state": h.state, "created_at": iso(h.created_at),
    }
    if with_certs:
        out["certificates"] = [cert_json(c, pem=False) for c in h.certificates]
    return out


def cert_json(c: Certificate, pem: bool = True) -> dict[str, Any]:
    rt = runtime()
    issuer = rt.authority.issuer_by_id(c.ca_id)
    now = rt.clock.now()
    out = {
        "issuer": issuer.label, "kind": c.kind, "generation": issuer.generation, "serial": c.serial,
        "serial_hex": f"{c.serial:x}", "holder": c.holder_id, "municipality": c.municipality,
        "subject_cn": c.subject_cn, "not_before": iso(c.not_before), "not_after": iso(c.not_after),
        "status": c.status, "reason": REASON_NAMES.get(c.reason) if c.reason is not None else None,
        "revoked_at": iso(c.revoked_at), "expired": c.not_after <= now,
    }
    if pem:
        out["pem"] = der_to_pem(rt.authority.der_of(c))
    return out


def issued_json(items: list[Issued]) -> list[dict[str, Any]]:
    out = []
    for i in items:
        d = cert_json(i.certificate)
        if i.pkcs12 is not None:
            d["pkcs12_base64"] = base64.b64encode(i.pkcs12).decode()
        out.append(d)
    return out


def rp_json(rp: RelyingParty) -> dict[str, Any]:
    return {"id": rp.id, "name": rp.name, "kinds": rp.kinds, "active": rp.active, "created_at": iso(rp.created_at)}


def _format() -> str:
    fmt: str = args_dict("format").get("format", "json")
    if fmt not in ("json", "pem", "der"):
        raise errors.InvalidInput(f"{fmt!r} is not a format", field="format", allowed=["json", "pem", "der"])
    return fmt


def _certificate_response(der: bytes, fmt: str, as_json: Callable[[], dict[str, Any]]) -> Response:
    if fmt == "der":
        return Response(der, mimetype="application/pkix-cert")
    if fmt == "pem":
        return Response(der_to_pem(der), mimetype="application/x-pem-file")
    return jsonify(as_json())


# ---------------------------------------------------------------- CAs
@bp.get("/cas")
def list_cas() -> Response:
    args_dict()
    return jsonify([
        {"issuer": i.label, "kind": i.kind, "generation": i.generation, "serial": i.certificate.serial_number,
         "not_before": iso(i.not_before), "not_after": iso(i.not_after), "revoked_at": iso(i.revoked_at),
         "hierarchy": i.hierarchy, "pem": i.pem}
        for i in runtime().authority.issuers()
    ])


@bp.get("/cas/<kind>/<generation>")
def show_ca(kind: str, generation: str) -> Response:
    fmt = _format()
    issuer = runtime().authority.issuer(kind, generation_of(generation))
    return _certificate_response(issuer.der, fmt, lambda: {
        "issuer": issuer.label, "kind": issuer.kind, "generation": issuer.generation, "pem": issuer.pem,
        "not_before": iso(issuer.not_before), "not_after": iso(issuer.not_after)})


@bp.post("/cas/<kind>/rollover")
def rollover(kind: str) -> tuple[Response, int]:
    body(())
    issuer = runtime().authority.rollover(kind)
    return jsonify({"issuer": issuer.label, "generation": issuer.generation, "pem": issuer.pem}), 201


@bp.post("/cas/<kind>/<generation>/revoke")
def revoke_ca(kind: str, generation: str) -> Response:
    """Both fields are required: ``{"reason": "keyCompromise", "confirm": "auth-g1"}`` (docs/lifecycle.md)."""
    data = body(("reason", "confirm"))
    issuer = runtime().authority.revoke_ca(kind, generation, data.get("reason"), data.get("confirm"))
    return jsonify({"issuer": issuer.label, "revoked_at": iso(issuer.revoked_at),
                    "reason": REASON_NAMES[issuer.reason]})


# ---------------------------------------------------------------- holders
@bp.post("/holders")
def create_holder() -> tuple[Response, int]:
    holder = runtime().authority.create_holder(body(HOLDER_FIELDS))
    return jsonify(holder_json(holder)), 201


@bp.get("/holders")
def list_holders() -> Response:
    holders = runtime().authority.list_holders(**args_dict("municipality", "state", "limit", "offset"))
    return jsonify([holder_json(h) for h in holders])


@bp.get("/holders/<holder_id>")
def show_holder(holder_id: str) -> Response:
    args_dict()
    return jsonify(holder_json(runtime().authority.get_holder(holder_id), with_certs=True))


@bp.post("/holders/<holder_id>/certificates")
def issue(holder_id: str) -> tuple[Response, int]:
    data = body(("kinds", *ISSUE_FIELDS))
    kinds = data.pop("kinds", BOTH)
    issued = runtime().authority.issue(holder_id, kinds, **data)
    return jsonify(issued_json(issued)), 201


@bp.post("/holders/<holder_id>/events")
def holder_event(holder_id: str) -> Response:
    # every event's fields; ca.events checks the chosen event's own list
    data = body(("event", *sorted({f for fields in EVENT_FIELDS.values() for f in fields})))
    event = data.pop("event", None)
    if event is None:
        raise errors.InvalidInput("is required", field="event", allowed=[e.value for e in HolderEvent])
    result = runtime().authority.event(holder_id, event, **data)
    if "issued" in result:
        result["issued"] = issued_json(result["issued"])
    return jsonify(result)


# ---------------------------------------------------------------- certificates
@bp.get("/certificates")
def list_certs() -> Response:
    args = args_dict("kind", "status", "municipality", "holder", "generation", "expiring_within_days",
                     "limit", "offset")
    return jsonify([cert_json(c, pem=False) for c in runtime().authority.list_certificates(**args)])


@bp.get("/certificates/expiring")
def expiring() -> Response:
    args = args_dict("days", "limit", "offset")
    if "days" not in args:
        raise errors.InvalidInput("is required", field="days", allowed=f"0-{MAX_EXPIRY_DAYS}")
    days = whole_number(args["days"], "days", 0, MAX_EXPIRY_DAYS)
    rt = runtime()
    certs = rt.authority.expiring(days, args.get("limit", 100), args.get("offset", 0))
    return jsonify({"days": days, "total": rt.authority.count_expiring(days),
                    "certificates": [cert_json(c, pem=False) for c in certs]})


@bp.get("/certificates/<issuer>/<serial>")
def show_cert(issuer: str, serial: str) -> Response:
    fmt = _format()
    authority = runtime().authority
    cert = authority.get_certificate(issuer, serial)
    return _certificate_response(authority.der_of(cert), fmt, lambda: cert_json(cert))


@bp.post("/certificates/<issuer>/<serial>/revoke")
def revoke(issuer: str, serial: str) -> Response:
    data = body(("reason",))
    cert = runtime().authority.revoke(issuer, serial, data.get("reason", Reason.UNSPECIFIED.rfc_name))
    return jsonify(cert_json(cert))


@bp.post("/certificates/<issuer>/<serial>/release")
def release(issuer: str, serial: str) -> Response:
    body(())
    runtime().authority.release_hold(issuer, serial)
    return jsonify({})  # never reached: release_hold always raises


# ---------------------------------------------------------------- relying parties
@bp.post("/relying-parties")
def add_rp() -> tuple[Response, int]:
    data = body(("name", "kinds"))
    rp, credential = runtime().registry.add_relying_party(data.get("name"), data.get("kinds", "both"))
    return jsonify({**rp_json(rp), "credential": credential}), 201


@bp.get("/relying-parties")
def list_rps() -> Response:
    args_dict()
    return jsonify([rp_json(rp) for rp in runtime().registry.list_relying_parties()])


@bp.delete("/relying-parties/<name>")
def remove_rp(name: str) -> Response:
    body(())
    runtime().registry.remove_relying_party(name)
    return jsonify({"name": name, "active": False})


# ---------------------------------------------------------------- admin tokens
@bp.post("/tokens")
def create_token() -> tuple[Response, int]:
    data = body(("label",))
    label = data.get("label", "api")
    if not isinstance(label, str) or not 1 <= len(label) <= 64:
        raise errors.InvalidInput("must be 1-64 characters", field="label")
    return jsonify({"label": label, "token": runtime().registry.create_token(label)}), 201


@bp.delete("/tokens/<label>")
def revoke_tokens(label: str) -> Response:
    """Revoke every live token labelled ``label``: refused from the next request on, in every process."""
    body(())
    return jsonify({"label": label, "revoked": runtime().registry.revoke_token(label)})


# ---------------------------------------------------------------- seeding
@bp.post("/seed")
def seed() -> tuple[Response, int]:
    from jpki_mock.ca.seed import MAX_API_HOLDERS, seed_holders

    data = body(("holders",))
    n = data.get("holders")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_API_HOLDERS:
        raise errors.InvalidInput(f"{n!r} is out of range", field="holders",
                                  allowed=f"1-{MAX_API_HOLDERS} (use the CLI for more)")
    result = seed_holders(runtime(), n, progress=False, workers=1)
    return jsonify(result.as_dict()), 201
