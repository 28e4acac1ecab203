"""Configuration: one typed, validated object, read from a TOML file, the environment and flags.

Precedence (last wins): built-in defaults < ``<data_dir>/config.toml`` (or the file named
by ``JPKI_MOCK_CONFIG``) < environment variables < command-line flags.  Every field of every
section can be set from the environment as ``JPKI_MOCK_<SECTION>_<FIELD>`` (top-level fields
as ``JPKI_MOCK_<FIELD>``); ``PORT`` and ``HOST`` are honoured as well.  A bad value stops
start-up with a message naming the field, where it came from, and what is allowed.

:func:`resolve` also says where each value came from (``jpki-mock config show``), and
:func:`record` writes the values ``jpki-mock serve`` was started with into the file, so that
every later process on the same data directory (the CLI in a second terminal, without the
server's environment) uses the URLs, time travel and access control the server uses.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin, get_type_hints

from jpki_mock.errors import ConfigError
from jpki_mock.private import write_private

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ENV_PREFIX = "JPKI_MOCK_"


@dataclass(frozen=True)
class OcspConfig:
    """The OCSP responder's policies (RFC 6960, RFC 9654, RFC 5019/9919)."""

    #: echo the request's nonce (RFC 9654), ignore it, or require one.
    nonce_policy: Literal["echo", "ignore", "require"] = "echo"
    #: answer for a serial a known issuer never issued: ``unknown``, or ``revoked`` with the
    #: Extended Revoked Definition extension (RFC 6960 section 4.4.8). Never ``good``.
    unknown_serial: Literal["unknown", "revoked"] = "unknown"
    #: most CertIDs answered in one request; more is malformedRequest.
    max_certids: int = 100
    #: largest POST body accepted, in bytes.
    max_request_bytes: int = 65536
    #: a POST body must arrive whole within this many milliseconds of its headers, or the answer
    #: is malformedRequest with HTTP 408 (an OCSP request is a few hundred octets: one packet).
    body_timeout_ms: int = 2000
    #: sign with a delegated responder certificate per CA generation, or with the CA key.
    signing: Literal["delegated", "ca"] = "delegated"
    #: thisUpdate is backdated by this many seconds (pyhanko tolerates 1 s of skew, the JDK 15 min).
    backdate_seconds: int = 300
    #: nextUpdate - thisUpdate, in seconds.
    validity_seconds: int = 3600
    #: a pre-signed response is re-signed once it is older than this many seconds.
    refresh_seconds: int = 1800
    #: delegated responder certificate lifetime, and how long before expiry it is replaced.
    responder_cert_days: int = 7
    responder_renew_days: int = 2
    #: concurrent live signatures per process before answering tryLater.
    live_sign_concurrency: int = 4
    #: answer only registered relying parties (J-LIS serves registered verifiers only).
    access_control: bool = False
    #: worker processes for ``jpki-mock ocsp serve``.
    workers: int = 2
    #: Python threads per worker of ``jpki-mock ocsp serve`` (jpki_mock.rsgi's app threads; with 1
    #: the app runs on the worker's event loop); 0 =
    #: automatic, see :attr:`serve_threads`.  Granian's own default for WSGI is backlog / workers
    #: / 2 (512 here): so many threads contending for one GIL cost a cached answer far more CPU.
    threads: int = 0
    #: port of the standalone responder (``jpki-mock ocsp serve``); it binds ``host``.
    port: int = 8081
    #: how a process learns of revocations: ``epoch`` reads the shared mmap counter (same host,
    #: same data directory; 8 bytes per request); ``database`` reads the revocation sequence from
    #: the database on every request (responders on other hosts sharing PostgreSQL: strict, a
    #: round trip per request); ``database-push`` is told by PostgreSQL (LISTEN/NOTIFY, no
    #: database read per request, a window of milliseconds across hosts; jpki_mock/epoch.py).
    revocation_check: Literal["epoch", "database", "database-push"] = "epoch"
    #: with ``revocation_check = "database"``: while the database is unreachable, pre-signed
    #: answers are served for at most this many seconds after the last successful read of the
    #: revocation sequence (they reflect the status as of that read); after that, and for
    #: anything not in memory, the answer is tryLater.  0: tryLater at once.
    outage_grace_seconds: int = 60
    #: how long a live signature may wait for a free slot before the answer is tryLater.
    live_sign_wait_ms: int = 1000
    #: lookups are counted in memory per process and added to the shared table this often.
    stats_flush_seconds: int = 10
    #: memory for pre-signed answers and certificate statuses, per worker process, in MiB; past
    #: it the least recently used answers are evicted one at a time (CLOCK, ocsp/presigned.py).
    #: An answer costs about 2 KiB, so 256 MiB keeps about 115,000 answers per worker.
    cache_mb: int = 256

    @property
    def serve_threads(self) -> int:
        """Threads per worker of ``jpki-mock ocsp serve``: ``threads`` when set, else 1 with
        ``revocation_check = "epoch"`` (every answer is CPU work inside the process, and RSA
        signing releases the GIL, so more threads only add GIL hand-offs: measured in
        docs/ocsp.md, 1 thread answers more cached requests with a third of the p99 of 8) and 8
        with ``"database"`` (every request waits for the database; threads overlap the waits)."""
        if self.threads:
            return self.threads
        return 1 if self.revocation_check == "epoch" else 8


@dataclass(frozen=True)
class CrlConfig:
    """CRL publication (RFC 5280 section 5). J-LIS publishes daily."""

    #: seconds between scheduled publications (86400: daily, as J-LIS does).
    period_seconds: int = 86400
    #: nextUpdate = issue time + period + grace, so a late run never leaves clients with an expired CRL.
    grace_seconds: int = 21600
    #: thisUpdate is backdated by this many seconds, as OCSP's (``ocsp.backdate_seconds``, same
    #: default), so a verifier whose clock runs behind does not find a fresh CRL "not yet valid";
    #: never earlier than the latest revocationDate the CRL lists (docs/crl.md).
    backdate_seconds: int = 300
    #: also publish delta CRLs (RFC 5280 section 5.2.4); not part of the real JPKI.
    delta: bool = False
    delta_period_seconds: int = 3600
    #: publish automatically from the running server.
    schedule: bool = True
    #: answer only registered relying parties (shares the OCSP mechanism).
    access_control: bool = False
    #: how many archived CRLs to keep per stream (0 keeps all).
    archive_keep: int = 0


@dataclass(frozen=True)
class LogConfig:
    """What the servers write on stderr besides errors (docs/configuration.md, "Logs")."""

    #: the access log: a line per request (method, path, status, octets, milliseconds; an OCSP
    #: answer's label and why a request was refused).  On by default: about 3 µs of server CPU
    #: per cached OCSP answer, a tenth of that path's throughput (docs/configuration.md, "Logs").
    access: bool = True
    #: ``text``: space-separated fields; ``json``: one JSON object per line.
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class Config:
    """Everything the mock needs to run. Build with :func:`load_config`."""

    data_dir: Path = Path("var")
    #: SQLAlchemy URL; default: SQLite file in the data directory.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    #: URL written into certificates (CRLDP URI, AIA OCSP); default http://host:port.
    base_url: str = ""
    #: passphrase protecting CA and card private keys at rest (PKCS#8).
    key_passphrase: str = ""
    #: ``production`` mirrors O=JPKI; ``test`` mirrors J-LIS's test cards (O=JPKI-TEST, test policy OIDs).
    hierarchy: Literal["production", "test"] = "production"
    #: emit only what real certificates carry: no HTTP URI in CRLDP, no AIA.
    faithful: bool = False
    #: worker processes of the combined server.
    workers: int = 2
    #: development-only clock override (operator call and per-request header).
    time_travel: bool = False
    #: this server is shared by several teams: time travel cannot be enabled.
    shared: bool = False
    #: largest JSON body accepted by the admin API, in bytes.
    max_body_bytes: int = 1_048_576
    #: an admin API body must arrive whole within this many milliseconds of its headers, or the
    #: answer is HTTP 408 (``ocsp.body_timeout_ms`` for /ocsp).
    body_timeout_ms: int = 10_000
    #: how the servers read request bodies (docs/ocsp.md, "Slow clients"): ``on`` reads each
    #: body on granian's event loop with the deadlines above (RSGI), so slow or stalled clients
    #: hold no thread, at about 1.5x the server CPU per cached answer; ``off`` hands bodies to
    #: the app thread (WSGI: fastest, but a client dribbling a body holds that thread);
    #: ``auto``: ``on`` for a ``shared`` server, ``off`` for a private one.
    slow_client_guard: Literal["auto", "on", "off"] = "auto"
    ocsp: OcspConfig = field(default_factory=OcspConfig)
    crl: CrlConfig = field(default_factory=CrlConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def guards_slow_clients(self) -> bool:
        """Whether the servers read bodies with deadlines (``slow_client_guard``)."""
        return self.slow_client_guard == "on" or (self.slow_client_guard == "auto" and self.shared)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'jpki.db').resolve()}"

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def config_file(self) -> Path:
        return self.data_dir / "config.toml"

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


_POSITIVE = {
    "port", "workers", "max_body_bytes", "max_certids", "max_request_bytes", "validity_seconds",
    "refresh_seconds", "responder_cert_days", "live_sign_concurrency", "period_seconds",
    "delta_period_seconds", "stats_flush_seconds", "body_timeout_ms", "cache_mb",
}
_NON_NEGATIVE = {
    "threads", "live_sign_wait_ms", "backdate_seconds", "responder_renew_days", "grace_seconds", "archive_keep",
    "outage_grace_seconds",
}


def _coerce(name: str, hint: Any, raw: Any, source: str) -> Any:
    where = f"{name} (from {source})"
    if get_origin(hint) is Literal:
        allowed = list(get_args(hint))
        value = str(raw).strip().lower() if isinstance(raw, str) else raw
        if value not in allowed:
            raise ConfigError(f"{raw!r} is not allowed", field=where, allowed=allowed)
        return value
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{raw!r} is not a boolean", field=where, allowed=["true", "false", "1", "0"])
    if hint is int:
        if isinstance(raw, bool):
            raise ConfigError(f"{raw!r} is not a whole number", field=where)
        try:
            value = int(str(raw).strip(), 10) if isinstance(raw, str) else int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{raw!r} is not a whole number", field=where) from None
        if isinstance(raw, float) and raw != value:
            raise ConfigError(f"{raw!r} is not a whole number", field=where)
        short = name.rsplit(".", 1)[-1]
        if short in _POSITIVE and value <= 0:
            raise ConfigError(f"{value} must be greater than 0", field=where)
        if short in _NON_NEGATIVE and value < 0:
            raise ConfigError(f"{value} must not be negative", field=where)
        if short == "port" and value > 65535:
            raise ConfigError(f"{value} is not a TCP port", field=where, allowed="1-65535")
        return value
    if hint is Path:
        return Path(str(raw))
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{raw!r} is not a string", field=where)
        return raw
    raise ConfigError(f"unsupported type {hint!r}", field=where)  # pragma: no cover - programming error


def _build(
    cls: type[DataclassInstance], prefix: str, file_values: Mapping[str, Any], env: Mapping[str, str], file_name: str,
    sources: dict[str, str], aliases: Mapping[str, str],
) -> Any:
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(cls)}
    for key in file_values:
        if key not in known and key != "data_dir":
            raise ConfigError(
                f"unknown setting {key!r} in {file_name}",
                field=f"{prefix}{key}",
                allowed=sorted(known),
            )
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        dotted = f"{prefix}{f.name}"
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            section = file_values.get(f.name, {})
            if not isinstance(section, Mapping):
                raise ConfigError("must be a table", field=f"{dotted} (from {file_name})")
            kwargs[f.name] = _build(hint, f"{dotted}.", section, env, file_name, sources, aliases)
            continue
        env_name = env_variable(dotted)
        if env_name in env:
            given = aliases.get(env_name, env_name)
            kwargs[f.name] = _coerce(dotted, hint, env[env_name], f"environment {given}")
            sources[dotted] = f"env {given}"
        elif f.name in file_values:
            kwargs[f.name] = _coerce(dotted, hint, file_values[f.name], file_name)
            sources[dotted] = f"file {file_name}"
        else:
            sources[dotted] = "default"
    return cls(**kwargs)


def env_variable(dotted: str) -> str:
    """``ocsp.port`` -> ``JPKI_MOCK_OCSP_PORT``: the environment variable of a setting."""
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def settings(config: Config) -> dict[str, Any]:
    """Every setting by dotted name (``port``, ``ocsp.nonce_policy``), without ``data_dir``."""
    out: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            elif f.name != "data_dir":
                out[prefix + f.name] = value

    walk(config, "")
    return out


def _with(config: Config, dotted: str, value: Any) -> Config:
    section, _, name = dotted.rpartition(".")
    if not section:
        return dataclasses.replace(config, **{name: value})
    inner = dataclasses.replace(getattr(config, section), **{name: value})
    return dataclasses.replace(config, **{section: inner})


@dataclass(frozen=True)
class Resolved:
    """The effective configuration and where each of its values came from."""

    config: Config
    #: dotted name -> ``default``, ``file PATH``, ``env NAME``, ``flag --NAME`` or ``argument``
    sources: dict[str, str]
    #: the configuration file read (it may not exist)
    file: Path

    def show(self) -> list[dict[str, Any]]:
        """One row per setting: name, value (the key passphrase masked), source."""
        rows = [{"name": "data_dir", "value": str(self.config.data_dir), "source": self.sources["data_dir"]},
                {"name": "config_file", "value": str(self.file), "source": self.sources["config_file"]}]
        for name, value in settings(self.config).items():
            shown = ("(set)" if value else "(not set)") if name in SECRETS else value
            if name == "database_url":  # a PostgreSQL URL may carry a password
                shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)
            rows.append({"name": name, "value": shown, "source": self.sources.get(name, "default")})
        return rows


def load_config(env: Mapping[str, str] | None = None, config_file: Path | None = None, **overrides: Any) -> Config:
    """Read and validate the configuration (:func:`resolve` without the sources)."""
    return resolve(env, config_file, **overrides).config


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse {path}: {exc}", field="config file") from None


def resolve(env: Mapping[str, str] | None = None, config_file: Path | None = None,
            flags: Mapping[str, tuple[str, Any]] | None = None, **overrides: Any) -> Resolved:
    """Read and validate the configuration, and say where each value came from.

    ``JPKI_MOCK_DATA`` names the data directory (default ``./var``), ``PORT``/``HOST`` the
    listening address, ``JPKI_MOCK_CONFIG`` an explicit TOML file.  ``flags`` maps a dotted
    setting to the command-line flag that gave it and its value (``{"port": ("--port", 9000)}``):
    they win over everything else.  ``overrides`` are programmatic (tests, benchmarks).
    """
    env = dict(os.environ if env is None else env)
    aliases: dict[str, str] = {}
    for short in ("PORT", "HOST"):
        if short in env and ENV_PREFIX + short not in env:
            env[ENV_PREFIX + short] = env[short]
            aliases[ENV_PREFIX + short] = short
    sources: dict[str, str] = {}
    data_dir = Path(env.get(ENV_PREFIX + "DATA", "var"))
    data_source = f"env {ENV_PREFIX}DATA" if ENV_PREFIX + "DATA" in env else "default"
    if "data_dir" in overrides:
        data_dir = Path(overrides.pop("data_dir"))
        data_source = "argument"
    env_file = env.get(ENV_PREFIX + "CONFIG")
    path = config_file or (Path(env_file) if env_file is not None else data_dir / "config.toml")
    sources["config_file"] = ("argument" if config_file else f"env {ENV_PREFIX}CONFIG" if env_file is not None
                              else "default")
    file_values: dict[str, Any] = {}
    if path.exists():
        file_values = _read_file(path)
    elif config_file is not None or ENV_PREFIX + "CONFIG" in env:
        raise ConfigError(f"{path} does not exist", field="config file")
    config: Config = _build(Config, "", file_values, env, str(path), sources, aliases)
    config = dataclasses.replace(config, data_dir=data_dir, **overrides)
    sources["data_dir"] = data_source
    sources.update(dict.fromkeys(overrides, "argument"))
    for dotted, (flag, raw) in (flags or {}).items():
        section, _, name = dotted.rpartition(".")
        owner: Any = getattr(Config(), section) if section else Config()
        hint = get_type_hints(type(owner))[name]
        config = _with(config, dotted, _coerce(dotted, hint, raw, f"flag {flag}"))
        sources[dotted] = f"flag {flag}"
    validate(config)
    return Resolved(config, sources, path)


def validate(config: Config) -> Config:
    """Cross-field checks that a single field's type cannot express."""
    if config.time_travel and config.shared:
        raise ConfigError(
            "time travel cannot be enabled on a server configured for shared use",
            field="time_travel",
            allowed="set shared = false (a private development server) or time_travel = false",
        )
    if config.ocsp.max_certids > 1000:
        raise ConfigError(f"{config.ocsp.max_certids} is above 1000", field="ocsp.max_certids", allowed="1-1000")
    if config.ocsp.refresh_seconds > config.ocsp.validity_seconds:
        raise ConfigError(
            "a response must be refreshed before it expires",
            field="ocsp.refresh_seconds",
            allowed=f"1-{config.ocsp.validity_seconds} (ocsp.validity_seconds)",
        )
    if config.ocsp.responder_renew_days >= config.ocsp.responder_cert_days:
        raise ConfigError(
            "the renewal window must be shorter than the certificate's lifetime",
            field="ocsp.responder_renew_days",
            allowed=f"0-{config.ocsp.responder_cert_days - 1}",
        )
    if config.base_url and not config.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{config.base_url!r} is not an http(s) URL", field="base_url")
    if config.database_url and not config.database_url.startswith(("sqlite", "postgresql")):
        raise ConfigError(
            f"{config.database_url!r} is not supported", field="database_url",
            allowed="sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
        )
    return config


#: settings never copied from the environment or a flag into the file: the key passphrase
#: protects the keys at rest, and a passphrase kept beside the database would protect nothing
#: (docs/configuration.md, "Keys at rest")
SECRETS = frozenset({"key_passphrase"})
#: the comment at the head of a file :func:`record` creates
RECORD_HEADER = (
    "# jpki-mock configuration (docs/configuration.md). `jpki-mock serve` records here the settings it\n"
    "# was started with (flags, environment), so that every process on this data directory agrees.\n"
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # A JSON string is a TOML basic string: the same quotes and escapes (TOML 1.0, "String").
    return json.dumps(str(value), ensure_ascii=False)


def _edit(text: str, changes: Mapping[str, Any]) -> str:
    """``text`` with each dotted setting in ``changes`` set, keeping every other line (comments
    included): a ``key = ...`` line in the right table is replaced, a missing key is added at
    the end of its table (a missing table at the end of the file)."""
    lines = text.splitlines()
    table_of: list[str] = []
    table = ""
    for line in lines:
        header = re.fullmatch(r"\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?", line)
        if header:
            table = header.group(1)
        table_of.append(table)
    pending = dict(changes)
    for i, line in enumerate(lines):
        match = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", line)
        if not match or re.fullmatch(r"\s*\[.*", line):
            continue
        dotted = f"{table_of[i]}.{match.group(1)}" if table_of[i] else match.group(1)
        if dotted in pending:
            lines[i] = f"{match.group(1)} = {toml_value(pending.pop(dotted))}"
    for dotted, value in pending.items():
        section, _, name = dotted.rpartition(".")
        entry = f"{name} = {toml_value(value)}"
        ends = [i for i, t in enumerate(table_of) if t == section]
        if section and not ends:
            lines += ["", f"[{section}]", entry]
            table_of += ["", section, section]
        elif not section:
            first = next((i for i, t in enumerate(table_of) if t), len(lines))
            while first > 0 and not lines[first - 1].strip():
                first -= 1
            lines.insert(first, entry)
            table_of.insert(first, "")
        else:
            at = ends[-1] + 1
            lines.insert(at, entry)
            table_of.insert(at, section)
    return "\n".join(lines) + "\n"


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        section, _, name = dotted.rpartition(".")
        (out.setdefault(section, {}) if section else out)[name] = value
    return out


def to_record(resolved: Resolved) -> dict[str, Any]:
    """The settings ``serve`` records: each given by a flag or the environment, except the
    :data:`SECRETS`, that the file does not already hold with that value."""
    in_file: dict[str, Any] = {}
    for key, value in (_read_file(resolved.file) if resolved.file.exists() else {}).items():
        if isinstance(value, dict):
            in_file.update({f"{key}.{name}": inner for name, inner in value.items()})
        else:
            in_file[key] = value
    return {name: value for name, value in settings(resolved.config).items()
            if resolved.sources.get(name, "default").startswith(("env ", "flag "))
            and name not in SECRETS and in_file.get(name) != value}


def record(resolved: Resolved) -> dict[str, Any]:
    """Write :func:`to_record`'s settings into the configuration file; returns what changed
    (empty: the file is untouched)."""
    changes = to_record(resolved)
    if changes:
        write_settings(resolved.file, changes)
    return changes


def write_settings(path: Path, changes: Mapping[str, Any]) -> Path:
    """Set the dotted settings ``changes`` in the TOML file ``path`` (created if missing),
    atomically and mode 0600 (it may hold the key passphrase), every other line kept."""
    old = path.read_text(encoding="utf-8") if path.exists() else RECORD_HEADER
    text = _edit(old, changes)
    # The editor keeps a hand-written file's layout; if it ever misreads one (a key written
    # over several lines, say), write the merged settings plainly rather than a wrong file.
    expected = _read_file(path) if path.exists() else {}
    for section, values in _nested(changes).items():
        if isinstance(values, dict):
            expected.setdefault(section, {}).update(values)
        else:
            expected[section] = values
    try:
        parsed: dict[str, Any] | None = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        parsed = None
    if parsed != expected:
        flat = {k: v for k, v in expected.items() if not isinstance(v, dict)}
        text = RECORD_HEADER + "".join(f"{k} = {toml_value(v)}\n" for k, v in flat.items())
        for section, values in expected.items():
            if isinstance(values, dict):
                text += f"\n[{section}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_private(path, text)


def write_initial_config(config: Config, passphrase: str) -> Path:
    """Create ``<data_dir>/config.toml`` at init with a generated key passphrase (mode 0600)."""
    path = config.config_file
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# jpki-mock configuration, written by `jpki-mock init`. See docs/configuration.md.\n"
        "# The passphrase protects the CA private keys at rest (encrypted PKCS#8); keep this file private.\n"
        f"key_passphrase = {passphrase!r}\n"
        f"hierarchy = {config.hierarchy!r}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path
