"""REST for the software card, under ``/admin/api/holders/<id>/card`` (behind the admin token).

Binary values travel as base64 in JSON (``data_base64``, ``challenge_base64``,
``signature_base64``, ``pkcs12_base64``).  A wrong PIN is 403 with ``tries_left``; a locked
PIN is 409; bad input 400, all from the shared error tree (ca/api.py HTTP_STATUS).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, Response, jsonify

from jpki_mock.ca.api import cert_json
from jpki_mock.errors import InvalidInput
from jpki_mock.kit.card import CardService
from jpki_mock.web import args_dict, body, runtime

bp = Blueprint("card", __name__)


def service() -> CardService:
    return CardService(runtime().authority)


def b64(data: dict[str, Any], name: str) -> bytes:
    value = data.get(name)
    if not isinstance(value, str):
        raise InvalidInput("is required (base64 text)", field=name)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("is not base64", field=name, allowed="standard base64 (RFC 4648 section 4)") from None


@bp.post("/holders/<holder_id>/card")
def create_card(holder_id: str) -> tuple[Response, int]:
    data = body(("sign_password", "auth_pin"))
    state = service().create(holder_id, auth_pin=data.get("auth_pin"), sign_password=data.get("sign_password"))
    return jsonify(state.as_dict()), 201


@bp.get("/holders/<holder_id>/card")
def show_card(holder_id: str) -> Response:
    args_dict()
    return jsonify(service().state(holder_id).as_dict())


@bp.get("/holders/<holder_id>/card/certificates/auth")
def read_auth_certificate(holder_id: str) -> Response:
    """The user-authentication certificate reads without a PIN [C]."""
    args_dict()
    return jsonify(cert_json(service().certificate(holder_id, "auth")))


@bp.post("/holders/<holder_id>/card/certificates/<kind>")
def read_certificate(holder_id: str, kind: str) -> Response:
    """POST because the signature certificate needs the password, which never goes in a URL."""
    data = body(("password",))
    return jsonify(cert_json(service().certificate(holder_id, kind, data.get("password"))))


@bp.post("/holders/<holder_id>/card/sign")
def sign(holder_id: str) -> Response:
    data = body(("password", "data_base64", "scheme"))
    signature, cert = service().sign(holder_id, b64(data, "data_base64"), data.get("password"),
                                     data.get("scheme", "cms"))
    return jsonify({"scheme": data.get("scheme", "cms"), "signature_base64": base64.b64encode(signature).decode(),
                    "certificate": cert_json(cert)})


@bp.post("/holders/<holder_id>/card/authenticate")
def authenticate(holder_id: str) -> Response:
    data = body(("pin", "challenge_base64"))
    signature, cert = service().authenticate(holder_id, b64(data, "challenge_base64"), data.get("pin"))
    return jsonify({"algorithm": "sha256WithRSAEncryption", "signature_base64": base64.b64encode(signature).decode(),
                    "certificate": cert_json(cert)})


@bp.post("/holders/<holder_id>/card/export")
def export(holder_id: str) -> Response:
    data = body(("kind", "pin", "pkcs12_passphrase"))
    p12 = service().export_pkcs12(holder_id, data.get("kind"), data.get("pin"), data.get("pkcs12_passphrase"))
    return jsonify({"kind": data.get("kind"), "pkcs12_base64": base64.b64encode(p12).decode()})


@bp.post("/holders/<holder_id>/card/unlock")
def unlock(holder_id: str) -> Response:
    data = body(("kind",))
    return jsonify(service().unlock(holder_id, data.get("kind")).as_dict())


@bp.post("/holders/<holder_id>/card/renew")
def renew(holder_id: str) -> Response:
    data = body(("sign_password", "auth_pin"))
    return jsonify(service().renew(holder_id, auth_pin=data.get("auth_pin"),
                                   sign_password=data.get("sign_password")).as_dict())


@bp.post("/holders/<holder_id>/card/reset")
def reset(holder_id: str) -> Response:
    data = body(("kind", "new_pin"))
    return jsonify(service().reset(holder_id, data.get("kind"), data.get("new_pin")).as_dict())
