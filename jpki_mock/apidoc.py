"""The admin API's reference, from one document: ``jpki_mock/openapi.yaml`` (OpenAPI 3.1).

``GET /admin/api/openapi.json`` serves it as JSON, ``GET /admin/api/docs`` renders it as one
HTML page on the server (no scripts, no CDN: it works offline), and ``GET /admin/api`` lists
its sections with their operations.  The three need no token: they describe the API and hold
no data (the operations they list do need one).  tests/test_openapi.py keeps the document and
the routes of :func:`jpki_mock.app.create_admin_app` in step.
"""

from __future__ import annotations

import functools
import html
import json
from importlib import resources
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify, url_for

from jpki_mock.web import args_dict

bp = Blueprint("apidoc", __name__)

#: the endpoints that answer without a bearer token (checked by jpki_mock.app's _auth)
PUBLIC_ENDPOINTS = frozenset({"apidoc.index", "apidoc.openapi", "apidoc.docs"})
#: the HTTP methods an OpenAPI path item may hold (OpenAPI 3.1 section 4.8.9)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document, read once from the package (shipped in the wheel as package data)."""
    text = resources.files("jpki_mock").joinpath("openapi.yaml").read_text(encoding="utf-8")
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (method, path, operation) of the document, in its order."""
    return [(method, path, item[method]) for path, item in doc["paths"].items() for method in METHODS
            if method in item]


@bp.get("")
def index() -> Response:
    """What the admin API holds, by section, with links to the document and its page."""
    args_dict()
    doc = document()
    ops = operations(doc)
    sections = [
        {"name": tag["name"], "description": tag["description"],
         "operations": [{"method": m.upper(), "path": p, "summary": op["summary"]}
                        for m, p, op in ops if tag["name"] in op.get("tags", ())]}
        for tag in doc["tags"]
    ]
    return jsonify({
        "title": doc["info"]["title"], "version": doc["info"]["version"],
        "openapi": url_for("apidoc.openapi", _external=True), "docs": url_for("apidoc.docs", _external=True),
        "authentication": "Authorization: Bearer <token> (printed by `jpki-mock init`; more with "
                          "`jpki-mock token create`) on every operation but these three",
        "sections": sections,
    })


@bp.get("/openapi.json")
def openapi() -> Response:
    args_dict()
    return jsonify(document())


@bp.get("/docs")
def docs() -> Response:
    args_dict()
    return Response(render_html(document()), mimetype="text/html")


# ---------------------------------------------------------------- the HTML page
_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
section.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.method{font:bold 13px monospace;padding:2px 6px;border-radius:4px;color:#fff;background:#555}
.get{background:#1769aa}.post{background:#2e7d32}.delete{background:#c62828}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f6f8fa;padding:.5rem;overflow:auto;max-height:24rem}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
nav a{margin-right:1rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow a local ``$ref`` (``#/components/...``) to what it names."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _json(value: Any) -> str:
    return f"<pre>{_e(json.dumps(value, ensure_ascii=False, indent=2))}</pre>"


def _operation(doc: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> str:
    out = [f'<section class="op" id="{_e(op["operationId"])}">',
           f'<h3><span class="method {method}">{method.upper()}</span> <code>{_e(path)}</code></h3>',
           f"<p>{_e(op['summary'])}</p>"]
    if "description" in op:
        out.append(f"<p>{_e(op['description'])}</p>")
    out.append("<p><em>No token needed.</em></p>" if op.get("security") == [] else
               "<p>Needs <code>Authorization: Bearer &lt;token&gt;</code>.</p>")
    params = [resolve(doc, p) for p in op.get("parameters", [])]
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>schema</th><th>about</th></tr>")
        for p in params:
            schema = json.dumps(resolve(doc, p["schema"]), ensure_ascii=False)
            out.append(f"<tr><td><code>{_e(p['name'])}</code>{' (required)' if p.get('required') else ''}</td>"
                       f"<td>{_e(p['in'])}</td><td><code>{_e(schema)}</code></td>"
                       f"<td>{_e(p.get('description', ''))}</td></tr>")
        out.append("</table>")
    body = resolve(doc, op.get("requestBody"))
    if body:
        schema = body["content"]["application/json"]["schema"]
        out.append(f"<h4>Request body ({'required' if body.get('required') else 'optional'}, application/json)</h4>")
        out.append(_json(schema))
    out.append("<h4>Responses</h4><table><tr><th>status</th><th>meaning</th><th>content</th></tr>")
    for status, response in op["responses"].items():
        ref = response.get("$ref", "")
        r = resolve(doc, response)
        content: dict[str, Any] = r.get("content", {})
        kinds = ", ".join(content)
        response_schema = next((media.get("schema") for media in content.values()), None)
        shown = _e(ref.rsplit("/", 1)[-1]) if ref else _json(response_schema) if response_schema else ""
        out.append(f"<tr><td>{_e(status)}</td><td>{_e(r['description'])}</td><td>{_e(kinds)}{shown and '<br>'}"
                   f"{shown}</td></tr>")
    out.append("</table></section>")
    return "\n".join(out)


def render_html(doc: dict[str, Any]) -> str:
    """The whole document as one HTML page: every operation by section, then the shared schemas."""
    info = doc["info"]
    ops = operations(doc)
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_e(info['title'])} {_e(info['version'])}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_e(info['title'])} <small>{_e(info['version'])}</small></h1>",
             f"<p>{_e(info['summary'])}</p>",
             "".join(f"<p>{_e(par)}</p>" for par in info["description"].split("\n\n")),
             '<p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI 3.1).</p>',
             "<nav>" + "".join(f'<a href="#tag-{_e(t["name"])}">{_e(t["name"])}</a>' for t in doc["tags"])
             + '<a href="#schemas">schemas</a></nav>']
    for tag in doc["tags"]:
        parts.append(f'<h2 id="tag-{_e(tag["name"])}">{_e(tag["name"])}</h2><p>{_e(tag["description"])}</p>')
        parts.extend(_operation(doc, m, p, op) for m, p, op in ops if tag["name"] in op.get("tags", ()))
    parts.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in doc["components"]["schemas"].items():
        parts.append(f'<h3 id="schema-{_e(name)}">{_e(name)}</h3>{_json(schema)}')
    parts.append("</body></html>")
    return "\n".join(parts)
