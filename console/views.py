"""The console's pages (Flask blueprint at ``/console``, registered by the composition root).

Read pages render what the store holds; every write goes through the same service code the
admin API calls (``rt.authority``, the kit's ``CardService``, the CRL publisher, the travelling
clock), so the checks, the units of work and the audit trail are the API's.  Domain errors
become the form again with the error named (field, what was wrong, what is allowed) and status
400/403/404/409, never a traceback.  Only the explainer and sign-in are public.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, send_file, session, url_for
from sqlalchemy import func, or_, select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from jpki_mock import audit, errors
from jpki_mock.ca.api import cert_json
from jpki_mock.ca.events import EVENT_FIELDS
from jpki_mock.ca.issuance import der_to_pem
from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.clock import JST
from jpki_mock.console import auth, crls, explain, i18n, probe
from jpki_mock.console.notes import note_for
from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream
from jpki_mock.kit.card import CardService
from jpki_mock.kit.scenarios import CATALOG, CATALOG_NAME
from jpki_mock.ocsp import stats
from jpki_mock.travel import TravellingClock, parse_delta, parse_time
from jpki_mock.vocab import KINDS, HolderEvent
from jpki_mock.web import OCSP_APP_KEY, RUNTIME_KEY, http_status

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")

PAGE = 20
#: the life events the holder page offers, each with the form fields it needs
EVENT_BUTTONS = (("move", HolderEvent.CHANGE), ("rename", HolderEvent.CHANGE), ("loss", HolderEvent.LOSS),
                 ("renewal", HolderEvent.RENEWAL), ("card_return", HolderEvent.CARD_RETURN),
                 ("death", HolderEvent.DEATH))
P = ParamSpec("P")
R = TypeVar("R")


@bp.record_once
def _configure(state: Any) -> None:
    rt = state.app.extensions[RUNTIME_KEY]
    auth.configure(state.app, Path(rt.config.data_dir))


def rt() -> Any:
    return current_app.extensions[RUNTIME_KEY]


def lang() -> str:
    chosen = request.cookies.get(i18n.COOKIE)
    if chosen in i18n.LANGUAGES:
        return chosen
    return request.accept_languages.best_match(i18n.LANGUAGES, default="en") or "en"


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    current = lang()
    return {"t": lambda key: i18n.text(key, current), "lang": current, "csrf_token": auth.csrf_token,
            "user": g.get("console_user"), "note_for": note_for, "jst": _jst, "json": json}


def _jst(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S JST")


#: the console's views that change the mock: each runs as the signed-in token in the audit log
#: (jpki_mock.audit), as an admin API request does; reading views (the explainer, the OCSP probe)
#: are not mutations and are not recorded
MUTATIONS = frozenset({"console.new_holder", "console.issue_card", "console.holder_event", "console.crl_publish",
                       "console.clock"})


@bp.before_request
def _guard() -> Response | None:
    r = rt()
    g.console_user = auth.signed_in(r.store)
    if request.method == "POST" and request.endpoint in MUTATIONS and g.console_user is not None:
        g.console_audit = audit.enter(f"console:{g.console_user}", r.store, r.clock)
    if request.method == "POST":
        auth.check_csrf()
    return None


@bp.teardown_request
def _done(_exc: BaseException | None) -> None:
    audit.leave(g.pop("console_audit", None))


def signed_in_only(view: Callable[P, R]) -> Callable[P, R | BaseResponse]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | BaseResponse:
        if g.get("console_user") is None:
            return redirect(url_for("console.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapper


def form_error(template: str, err: errors.JpkiError, **context: Any) -> tuple[str, int]:
    """The page again, with the error the API would have given, and the form as it was."""
    page = {**context, "error": err.to_dict(), "form": request.form}
    return render_template(template, **page), http_status(err)


@bp.errorhandler(errors.JpkiError)
def _domain_error(err: errors.JpkiError) -> tuple[str, int]:
    return render_template("error.html", error=err.to_dict()), http_status(err)


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException) -> tuple[str, int]:
    return render_template("error.html", error={"error": (err.name or "error").lower().replace(" ", "_"),
                                                "message": err.description}), err.code or 500


# ---------------------------------------------------------------- language, sign-in
@bp.get("/lang/<code>")
def set_language(code: str) -> BaseResponse:
    if code not in i18n.LANGUAGES:
        raise errors.NotFound(f"no language {code!r}", field="language", allowed=list(i18n.LANGUAGES))
    target = request.args.get("next", "")
    resp = redirect(target if target.startswith("/console") else url_for("console.overview"))
    resp.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, samesite="Strict", path="/console")
    return resp


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = request.values.get("next", "")
    if not target.startswith("/console"):
        target = url_for("console.overview")
    if request.method == "POST":
        try:
            auth.sign_in(rt().store, request.form.get("token", ""))
        except errors.JpkiError as err:
            return form_error("login.html", err, next=target)
        return redirect(target)
    return render_template("login.html", next=target)


@bp.post("/logout")
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("console.login"))


# ---------------------------------------------------------------- overview
@bp.get("/")
@signed_in_only
def overview() -> str:
    r = rt()
    now = r.clock.now()
    cas = [{"issuer": i, "state": "revoked" if i.revoked_at else ("expired" if i.not_after <= now else "active")}
           for i in r.authority.issuers()]
    with r.store.session() as s:
        rows = s.execute(select(Certificate.kind, Certificate.status, Certificate.not_after <= now, func.count())
                         .group_by(Certificate.kind, Certificate.status, Certificate.not_after <= now)).all()
    counts: dict[str, dict[str, int]] = {k.value: {"good": 0, "revoked": 0, "expired": 0} for k in KINDS}
    for kind, status, expired, n in rows:
        counts[kind]["expired" if expired and status == "good" else status] += n
    pub = Publisher(CrlDeps.of(r))
    latest = [(stream, pub.latest(stream)) for stream in pub.streams() if stream.scope in ("full", "arl")]
    today = now.astimezone(JST).date()
    lookups = stats.summary(r.store, today, today)["by_kind"]
    chart = {k.value: sum(lookups.get(k.value, {}).values()) for k in KINDS}
    peak = max(chart.values()) or 1
    return render_template("overview.html", cas=cas, counts=counts, latest=latest, chart=chart, peak=peak,
                           lookups=lookups, today=today, audit=_recent_audit(r))


def _recent_audit(r: Any) -> list[dict[str, Any]]:
    """The audit log's latest entries (jpki_mock.audit), newest first."""
    return [e.as_dict() for e in audit.entries(r.store, limit=10)]


# ---------------------------------------------------------------- holders
@bp.get("/holders")
@signed_in_only
def holders() -> str:
    query = request.args.get("q", "").strip()
    page = _page_number(request.args.get("page", "1"))
    q = select(Holder)
    if query:
        pattern = f"%{query}%"
        conditions = [Holder.name.like(pattern), Holder.address.like(pattern), Holder.municipality == query]
        if query.isdigit():
            conditions.append(Holder.id == int(query))
        q = q.where(or_(*conditions))
    with rt().store.session() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        found = list(s.scalars(q.order_by(Holder.id).limit(PAGE).offset((page - 1) * PAGE)))
    pages = max(1, math.ceil(total / PAGE))
    return render_template("holders.html", holders=found, q=query, page=page, pages=pages, total=total)


def _page_number(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 10**6:
        raise errors.InvalidInput(f"{raw!r} is not a page number", field="page", allowed="1, 2, ...")
    return int(raw)


HOLDER_FORM = ("name", "date_of_birth", "gender", "address", "municipality", "name_flags", "address_flags")


@bp.route("/holders/new", methods=["GET", "POST"])
@signed_in_only
def new_holder() -> Any:
    if request.method == "POST":
        data = {k: v for k in HOLDER_FORM if (v := request.form.get(k, "").strip())}
        try:
            holder = rt().authority.create_holder(data)
        except errors.JpkiError as err:
            return form_error("holder_new.html", err)
        return redirect(url_for("console.holder", holder_id=holder.id))
    return render_template("holder_new.html", error=None, form={})


def _holder_page(holder_id: str, **extra: Any) -> dict[str, Any]:
    r = rt()
    holder = r.authority.get_holder(holder_id)
    try:
        card = CardService(r.authority).state(holder.id).as_dict()
    except errors.NotFound:
        card = None
    certs = [cert_json(c, pem=False) for c in holder.certificates]
    history: list[tuple[datetime, str, dict[str, Any]]] = []
    for c in holder.certificates:
        history.append((c.issued_at, "issued", cert_json(c, pem=False)))
        if c.revoked_at is not None:
            history.append((c.revoked_at, "revoked", cert_json(c, pem=False)))
    history.sort(key=lambda h: h[0], reverse=True)
    return {"holder": holder, "card": card, "certs": certs, "history": history, "buttons": EVENT_BUTTONS,
            "error": None, "form": {}, "result": None, **extra}


@bp.get("/holders/<holder_id>")
@signed_in_only
def holder(holder_id: str) -> str:
    return render_template("holder.html", **_holder_page(holder_id))


@bp.post("/holders/<holder_id>/card")
@signed_in_only
def issue_card(holder_id: str) -> Any:
    r = rt()
    try:
        CardService(r.authority).create(holder_id, auth_pin=request.form.get("auth_pin") or None,
                                        sign_password=request.form.get("sign_password") or None)
    except errors.JpkiError as err:
        return form_error("holder.html", err, **_holder_page(holder_id))
    return redirect(url_for("console.holder", holder_id=holder_id))


@bp.post("/holders/<holder_id>/events")
@signed_in_only
def holder_event(holder_id: str) -> Any:
    button = request.form.get("button", "")
    buttons = dict(EVENT_BUTTONS)
    if button not in buttons:
        raise errors.InvalidInput(f"{button!r} is not an event", field="button", allowed=list(buttons))
    event = buttons[button]
    data: dict[str, Any] = {}
    if button == "move":
        data["changes"] = {k: request.form.get(k, "").strip() for k in ("address", "municipality")}
    elif button == "rename":
        data["changes"] = {"name": request.form.get("name", "").strip()}
    assert set(data) <= set(EVENT_FIELDS[event])
    r = rt()
    before = _statuses(r, holder_id)
    try:
        if button == "renewal" and _has_card(r, holder_id):
            # A holder with a card renews onto it (new keys under new PINs), as at the municipality.
            CardService(r.authority).renew(holder_id, auth_pin=request.form.get("auth_pin") or None,
                                           sign_password=request.form.get("sign_password") or None)
        else:
            r.authority.event(holder_id, event.value, **data)
    except errors.JpkiError as err:
        return form_error("holder.html", err, **_holder_page(holder_id))
    revoked = [{"kind": kind, "serial": serial, "reason": reason}
               for (kind, serial), (status, reason) in _statuses(r, holder_id).items()
               if status == "revoked" and before.get((kind, serial)) != (status, reason)]
    return render_template("holder.html", **_holder_page(holder_id, result={"button": button, "revoked": revoked}))


def _statuses(r: Any, holder_id: str) -> dict[tuple[str, int], tuple[str, str | None]]:
    """Each of the holder's certificates: (status, reason), to show what an event revoked."""
    return {(c["kind"], c["serial"]): (c["status"], c["reason"])
            for c in (cert_json(c, pem=False) for c in r.authority.get_holder(holder_id).certificates)}


def _has_card(r: Any, holder_id: str) -> bool:
    try:
        CardService(r.authority).state(holder_id)
    except errors.NotFound:
        return False
    return True


# ---------------------------------------------------------------- certificates
def _certificate(issuer: str, serial: str) -> tuple[Certificate, Any]:
    r = rt()
    cert = r.authority.get_certificate(issuer, serial)
    return cert, r.authority.issuer_by_id(cert.ca_id)


@bp.get("/certificates/<issuer>/<serial>")
@signed_in_only
def certificate(issuer: str, serial: str) -> str:
    cert, ca = _certificate(issuer, serial)
    return render_template("certificate.html", cert=cert_json(cert, pem=False), explained=explain.explain(cert.der),
                           issuer=ca, exchange=None, error=None, form={})


@bp.get("/certificates/<issuer>/<serial>.<fmt>")
@signed_in_only
def certificate_file(issuer: str, serial: str, fmt: str) -> Response:
    cert, _ca = _certificate(issuer, serial)
    if fmt not in ("pem", "der"):
        raise errors.NotFound(f"no .{fmt} form", field="path", allowed=[".pem", ".der"])
    data = der_to_pem(cert.der).encode() if fmt == "pem" else cert.der
    resp = Response(data, mimetype="application/x-pem-file" if fmt == "pem" else "application/pkix-cert")
    resp.headers["Content-Disposition"] = f'attachment; filename="{issuer}-{cert.serial}.{fmt}"'
    return resp


@bp.post("/certificates/<issuer>/<serial>/ocsp")
@signed_in_only
def certificate_ocsp(issuer: str, serial: str) -> Any:
    r = rt()
    cert, ca = _certificate(issuer, serial)
    page = {"cert": cert_json(cert, pem=False), "explained": explain.explain(cert.der), "issuer": ca,
            "form": request.form, "error": None}
    try:
        exchange = probe.ask(_ocsp_app(r), cert.der, ca.der, method=request.form.get("method", "POST"),
                             nonce=request.form.get("nonce") == "on", hash_name=request.form.get("hash", "sha1"),
                             base_url=r.config.public_url)
    except errors.JpkiError as err:
        return form_error("certificate.html", err, **{**page, "exchange": None})
    explained_request = explain.explain(exchange.request)
    explained_response = explain.explain(exchange.response) if exchange.response[:1] == b"\x30" else None
    return render_template("certificate.html", exchange=exchange, explained_request=explained_request,
                           explained_response=explained_response, **page)


def _ocsp_app(r: Any) -> Any:
    """The responder this server mounts at /ocsp; one of our own when the console runs alone."""
    app = current_app.extensions.get(OCSP_APP_KEY)
    if app is None:
        from jpki_mock.ocsp.http import make_app

        app = current_app.extensions[OCSP_APP_KEY] = make_app(r.config, r.clock, r.store, r.status, r.keyring,
                                                              r.epoch)
    return app


# ---------------------------------------------------------------- CRLs
def _publisher() -> Publisher:
    return Publisher(CrlDeps.of(rt()))


@bp.get("/crls")
@signed_in_only
def crl_streams() -> str:
    pub = _publisher()
    streams = [(s, pub.latest(s)) for s in pub.streams()]
    published = [(s, rec) for s, rec in streams if rec is not None]
    return render_template("crls.html", streams=published, unpublished=len(streams) - len(published), done=None)


@bp.post("/crls/publish")
@signed_in_only
def crl_publish() -> str:
    pub = _publisher()
    done = pub.publish_many(pub.select())
    streams = [(s, rec) for s in pub.streams() if (rec := pub.latest(s)) is not None]
    return render_template("crls.html", streams=streams, unpublished=0, done=len(done))


def _stream(kind: str, generation: int, name: str) -> Stream:
    return _publisher().find(kind, generation, name)


@bp.get("/crls/<kind>/g<int:generation>/<name>")
@signed_in_only
def crl_stream(kind: str, generation: int, name: str) -> str:
    pub = _publisher()
    stream = pub.find(kind, generation, name)
    records = pub.records(stream)
    if not records:
        raise errors.NotFound(f"{stream.label} has not been published yet", field="stream")
    numbers = [rec.number for rec in records]
    number = _number(request.args.get("number"), numbers[-1], numbers)
    crl = crls.load(pub.archive_file(stream, number))
    entries = crls.entries(crl)
    serial = request.args.get("serial", "")
    page = _page_number(request.args.get("page", "1"))
    listed = [e for e in entries if str(e.serial) == serial] if serial else []
    compare = request.args.get("compare")
    changes = None
    if compare:
        other = _number(compare, numbers[0], numbers)
        older, newer = sorted((other, number))
        changes = (older, newer, *crls.diff(crls.load(pub.archive_file(stream, older)),
                                            crls.load(pub.archive_file(stream, newer))))
    pages = max(1, math.ceil(len(entries) / 100))
    return render_template("crl.html", stream=stream, numbers=numbers, number=number, crl=crl,
                           entries=entries[(page - 1) * 100:page * 100], total=len(entries), page=page, pages=pages,
                           serial=serial, listed=listed, changes=changes,
                           explained=explain.explain(pub.archive_file(stream, number).read_bytes())
                           if len(entries) <= 1000 else None)


def _number(raw: str | None, default: int, known: list[int]) -> int:
    if raw in (None, ""):
        return default
    assert raw is not None
    if not raw.isascii() or not raw.isdigit() or int(raw) not in known:
        raise errors.NotFound(f"no CRL number {raw!r} in this stream", field="number",
                              allowed=known if len(known) <= 20 else f"{known[0]}-{known[-1]}")
    return int(raw)


# ---------------------------------------------------------------- explainer (public)
@bp.route("/explain", methods=["GET", "POST"])
def explainer() -> Any:
    if request.method == "GET":
        return render_template("explain.html", explained=None, error=None, form={})
    upload = request.files.get("file")
    raw = upload.read(explain.MAX_INPUT_BYTES + 1) if upload and upload.filename else b""
    if not raw:
        raw = request.form.get("input", "").encode()
    try:
        result = explain.explain(raw, request.form.get("passphrase") or None)
    except errors.JpkiError as err:
        return form_error("explain.html", err, explained=None)
    return render_template("explain.html", explained=result, error=None, form=request.form)


# ---------------------------------------------------------------- time travel
@bp.route("/clock", methods=["GET", "POST"])
@signed_in_only
def clock() -> Any:
    current = rt().clock
    if request.method == "POST":
        if not isinstance(current, TravellingClock):
            raise errors.Conflict("time travel is off", field="clock",
                                  allowed="start the server with JPKI_MOCK_TIME_TRAVEL=1")
        action = request.form.get("action", "")
        try:
            if action == "advance":
                current.advance(parse_delta(request.form.get("by", "")))
            elif action == "set":
                current.set(parse_time(request.form.get("at", "")))
            elif action == "reset":
                current.reset()
            else:
                raise errors.InvalidInput(f"{action!r} is not an action", field="action",
                                          allowed=["advance", "set", "reset"])
        except errors.JpkiError as err:
            return form_error("clock.html", err, described=current.describe())
        return redirect(url_for("console.clock"))
    described = current.describe() if isinstance(current, TravellingClock) else None
    return render_template("clock.html", described=described, now=current.now(), error=None, form={})


# ---------------------------------------------------------------- scenarios and load-test reports
def _data_dir() -> Path:
    return Path(rt().config.data_dir)


def _scenario_dirs() -> list[Path]:
    """Built catalogs: folders one or two levels under the data directory holding a manifest
    that names the catalog format (kit.scenarios.CATALOG_NAME)."""
    found = []
    for manifest in [*_data_dir().glob("*/manifest.json"), *_data_dir().glob("*/*/manifest.json")]:
        try:
            if json.loads(manifest.read_text()).get("catalog") == CATALOG_NAME:
                found.append(manifest.parent)
        except (OSError, ValueError, AttributeError):
            continue
    return sorted(found)


@bp.get("/scenarios")
@signed_in_only
def scenarios() -> str:
    built = []
    for folder in _scenario_dirs():
        manifest = json.loads((folder / "manifest.json").read_text())
        built.append({"folder": folder.relative_to(_data_dir()).as_posix(), "manifest": manifest})
    return render_template("scenarios.html", catalog=CATALOG, built=built)


def _file_under(root: Path, rel: str) -> Response:
    """``root/rel`` if it is a file inside ``root`` (no escaping it with ``..`` or links)."""
    target = (root / rel).resolve()
    if not target.is_file() or not target.is_relative_to(root.resolve()):
        raise errors.NotFound(f"no file {rel!r}", field="path")
    return send_file(target, as_attachment=target.suffix not in (".html", ".png", ".txt", ".json", ".csv"))


@bp.get("/scenarios/files/<path:rel>")
@signed_in_only
def scenario_file(rel: str) -> Response:
    """A file of a built catalog (its PKCS#12 files included: they are test keys for relying parties)."""
    for folder in _scenario_dirs():
        prefix = folder.relative_to(_data_dir()).as_posix() + "/"
        if rel.startswith(prefix):
            return _file_under(folder, rel[len(prefix):])
    raise errors.NotFound(f"no file {rel!r} in a built catalog", field="path")


#: where ``jpki-mock loadtest run`` writes its reports by default, relative to the working directory
REPORTS_DIR = Path("loadtest") / "reports"


def _reports_dir() -> Path:
    return REPORTS_DIR.resolve()


@bp.get("/reports")
@signed_in_only
def reports() -> str:
    root = _reports_dir()
    found = []
    if root.is_dir():
        for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
            files = sorted(f.name for f in folder.iterdir() if f.is_file())
            found.append({"name": folder.name, "files": files})
    return render_template("reports.html", reports=found)


@bp.get("/reports/<name>/<path:rel>")
@signed_in_only
def report_file(name: str, rel: str) -> Response:
    return _file_under(_reports_dir() / name, rel)

