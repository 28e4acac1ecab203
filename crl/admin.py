"""Admin API for CRLs (mounted under /admin/api behind the bearer token by :mod:`jpki_mock.app`).

``POST /admin/api/crl/publish``            publish now: body
                                           ``{"ca": "sign-g1", "partition": "13101", "delta": false}``,
                                           every field optional (default: every stream)
``GET  /admin/api/crl/streams``            every stream with its latest CRL
``GET  /admin/api/crl/streams/<kind>/g<N>/<name>``   one stream's archive (every published number)
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify

from jpki_mock import errors
from jpki_mock.crl.publisher import CrlDeps, Publisher, record_json
from jpki_mock.web import args_dict, body, runtime

bp = Blueprint("crl", __name__)
_GENERATION = re.compile(r"[0-9]{1,9}")


def _publisher() -> Publisher:
    return Publisher(CrlDeps.of(runtime()))


@bp.post("/crl/publish")
def publish() -> tuple[Response, int]:
    data = body(("ca", "partition", "delta"))
    for key in ("ca", "partition"):
        if key in data and not isinstance(data[key], str):
            raise errors.InvalidInput("must be a string", field=key)
    if "delta" in data and not isinstance(data["delta"], bool):
        raise errors.InvalidInput("must be true or false", field="delta")
    pub = _publisher()
    streams = pub.select(data.get("ca"), data.get("partition"), data.get("delta"))
    base = pub.config.public_url
    return jsonify({"published": [record_json(rec, s, base) for s, rec in pub.publish_many(streams)]}), 201


@bp.get("/crl/streams")
def streams() -> Response:
    args_dict()
    pub = _publisher()
    base = pub.config.public_url
    out = []
    for s in pub.streams():
        rec = pub.latest(s)
        out.append(record_json(rec, s, base) if rec else {"stream": s.label, "url": base + s.path(), "number": None})
    return jsonify(out)


@bp.get("/crl/streams/<kind>/g<generation>/<name>")
def archive(kind: str, generation: str, name: str) -> Response:
    args_dict()
    if not _GENERATION.fullmatch(generation):  # ASCII digits only, within the Integer column
        raise errors.NotFound(f"no CA generation {generation!r}", field="generation", allowed="g1, g2, ...")
    pub = _publisher()
    stream = pub.find(kind, int(generation), name)
    base = pub.config.public_url
    records = [{**record_json(r, stream, base), "url": f"{base}{stream.path()}?number={r.number}"}
               for r in pub.records(stream) if pub.archive_file(stream, r.number).exists()]
    return jsonify({"stream": stream.label, "crls": records})
