"""``jpki-mock``: the command-line root, one of the composition root's three modules.

It opens the runtime for every command (:func:`jpki_mock.commands.set_runtime_opener`) and
adds each part's commands by name: nothing is discovered from a table of module names.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from jpki_mock import audit_views, datadir, errors, server
from jpki_mock.ca import cli as ca_cli
from jpki_mock.commands import Ctx, JpkiGroup, echo_json, pass_ctx, set_runtime_opener
from jpki_mock.config import load_config, record, resolve, toml_value, write_initial_config, write_settings
from jpki_mock.crl import cli as crl_cli
from jpki_mock.kit import cli as kit_cli
from jpki_mock.kit import timetravel as kit_timetravel
from jpki_mock.loadtest import cli as loadtest_cli
from jpki_mock.ocsp import cli as ocsp_cli
from jpki_mock.private import write_private
from jpki_mock.runtime import Runtime

set_runtime_opener(lambda config=None: Runtime.open(config or load_config()))


@click.group(cls=JpkiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jpki-mock")
@click.pass_context
def main(ctx: click.Context) -> None:
    """A mock of Japan's JPKI: signature and user-authentication CAs, CRLs and OCSP.

    Data lives in ./var unless JPKI_MOCK_DATA is set; see docs/configuration.md."""
    ctx.ensure_object(Ctx)


@main.command()
@click.option("--hierarchy", type=click.Choice(["production", "test"]), default=None,
              help="production: O=JPKI; test: O=JPKI-TEST with the test policy OIDs.")
@click.option("--if-needed", is_flag=True, help="Do nothing (exit 0) when the CA already exists.")
def init(hierarchy: str | None, if_needed: bool) -> None:
    """Create the signature CA and the user-authentication CA (generation 1) and an admin token."""
    config = load_config()
    probe = Runtime.open(config)
    if probe.store.is_initialised():
        probe.close()
        if if_needed:
            click.echo(f"CA already initialised in {config.data_dir}")
            return
        raise errors.Conflict("this data directory already has a CA", field="data_dir",
                              allowed="use `jpki-mock ca rollover` for a new key generation")
    probe.close()
    if hierarchy:
        config = config.replace(hierarchy=hierarchy)
    if not config.key_passphrase:
        passphrase = secrets.token_urlsafe(24)
        if not config.config_file.exists():
            write_initial_config(config, passphrase)
        else:  # a file `serve` recorded settings in: keep them, add the passphrase
            write_settings(config.config_file, {"key_passphrase": passphrase, "hierarchy": config.hierarchy})
        click.echo(f"wrote {config.config_file} (key passphrase for the CA keys; keep it private)")
        config = config.replace(key_passphrase=passphrase)
    rt = Runtime.open(config)
    try:
        token = rt.authority.init(config.hierarchy)
        issuers = rt.authority.issuers()
    finally:
        rt.close()  # `serve --init` opens its own runtime next, in this process
    for issuer in issuers:
        click.echo(f"created {issuer.label}: {issuer.certificate.subject.rfc4514_string()} "
                   f"(serial {issuer.certificate.serial_number}, until {issuer.not_after:%Y-%m-%d %H:%M:%SZ})")
    token_file = Path(config.data_dir) / "admin-token"
    write_private(token_file, token + "\n")
    click.echo(f"admin API token (shown once; also saved to {token_file} for local use):")
    click.echo(token)


def log_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--log-format`` and ``--access-log/--no-access-log`` (log.format, log.access)."""
    command = click.option("--access-log/--no-access-log", "access_log", default=None,
                           help="A line per request on stderr (default: log.access, on).")(command)
    return click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
                        help="Access log lines as text or JSON (default: log.format, text).")(command)


@main.command()
@click.option("--host", default=None, help="Address to listen on (setting host; default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="TCP port (setting port; default 8080, or PORT).")
@click.option("--base-url", default=None, help="URL written into certificates and CRLs (default http://HOST:PORT).")
@click.option("--time-travel/--no-time-travel", default=None, help="Development clock override (docs/time-travel.md).")
@click.option("--workers", type=int, default=None, help="Worker processes (setting workers; default 2).")
@click.option("--no-background", is_flag=True, help="Do not run the CRL schedule in this server.")
@click.option("--init/--no-init", "do_init", default=False, help="Initialise the CA first if needed (make run).")
@log_options
def serve(host: str | None, port: int | None, base_url: str | None, time_travel: bool | None,
          workers: int | None, no_background: bool, do_init: bool, log_format: str | None,
          access_log: bool | None) -> None:
    """Run the combined server (admin API, CRLs, OCSP) under granian on HOST:PORT.

    The settings given here by flag or environment are recorded in the data directory's
    configuration file, so that every other jpki-mock command on it uses the same URLs, time
    travel and access control (`jpki-mock config show`; docs/configuration.md)."""
    given = {"host": ("--host", host), "port": ("--port", port), "base_url": ("--base-url", base_url),
             "time_travel": ("--time-travel" if time_travel else "--no-time-travel", time_travel),
             "workers": ("--workers", workers), "log.format": ("--log-format", log_format),
             "log.access": ("--access-log" if access_log else "--no-access-log", access_log)}
    flags = {name: flag for name, flag in given.items() if flag[1] is not None}
    config = resolve(flags=flags).config
    # A taken port fails before anything is created or recorded: a second `make run` must not
    # rewrite the settings of the server already running on this data directory.
    server.ensure_port_free(config.host, config.port)
    if do_init:
        click.get_current_context().invoke(init, hierarchy=None, if_needed=True)
    resolved = resolve(flags=flags)  # init may have written the key passphrase
    changes = record(resolved)
    if changes:
        listed = ", ".join(f"{name} = {toml_value(value)}" for name, value in changes.items())
        click.echo(f"recorded in {resolved.file}: {listed} (every jpki-mock command on this data directory "
                   "now uses them; see `jpki-mock config show`)")
    server.serve(resolved.config, background=not no_background)
    server.exit_now()


# ------------------------------------------------------------------ configuration
@main.group(cls=JpkiGroup)
def config() -> None:
    """The effective configuration (docs/configuration.md)."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="JSON: {name: {value, source}}.")
def config_show(as_json: bool) -> None:
    """Every effective setting and where it came from: flag, env NAME, file PATH or default."""
    resolved = resolve()
    rows = resolved.show()
    rows.append({"name": "public_url", "value": resolved.config.public_url,
                 "source": "derived: base_url, else http://host:port (written into certificates and CRLs)"})
    if as_json:
        echo_json({row["name"]: {"value": row["value"], "source": row["source"]} for row in rows})
        return
    width = max(len(row["name"]) for row in rows)
    values = [_shown(row["value"]) for row in rows]
    value_width = min(max(len(v) for v in values), 40)
    click.echo(f"{'setting':<{width}}  {'value':<{value_width}}  source")
    for row, value in zip(rows, values, strict=True):
        click.echo(f"{row['name']:<{width}}  {value:<{value_width}}  {row['source']}")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if value == "" else str(value)


@main.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
def reset(yes: bool) -> None:
    """Start over: delete everything this instance created in its data directory (database, CA
    and card keys, CRLs, admin token, clock offset, scenario catalog); config.toml is kept.
    Refuses while a server runs on the directory, and in a directory jpki-mock did not make."""
    config = load_config()
    if not config.data_dir.exists():
        # Without the data directory nothing says a configured database is jpki-mock's to empty.
        click.echo(f"nothing to reset: {config.data_dir} does not exist")
        return
    plan = datadir.plan_reset(config.data_dir)
    database = config.database_url if config.database_url and not config.database_url.startswith("sqlite") else ""
    if not plan.remove and not database:
        click.echo(f"nothing to reset in {config.data_dir}")
        return
    click.echo(f"jpki-mock reset of {config.data_dir.resolve()}:")
    for line in plan.describe():
        click.echo(line)
    if database:
        click.echo(f"  drop   jpki-mock's tables in {database.rsplit('@', 1)[-1]}")
    if not yes:
        if not ca_cli.stdin_is_terminal():
            raise errors.InvalidInput("needs confirmation: pass --yes (standard input is not a terminal)",
                                      field="yes", allowed="--yes")
        click.confirm("This cannot be undone. Reset?", default=False, abort=True)
    if database:
        from jpki_mock.db import Base, make_engine

        engine = make_engine(database)
        try:
            Base.metadata.drop_all(engine)  # Runtime's import declared every part's tables
        finally:
            engine.dispose()
    datadir.remove(plan)
    click.echo(f"reset {config.data_dir}: run `jpki-mock init` (or `make run`) to create a new CA")


@main.command()
@click.option("--label", default="cli", show_default=True)
@click.option("--revoke", is_flag=True,
              help="Revoke every live token with this label instead (at once, in every process).")
@pass_ctx
def token(c: Ctx, label: str, revoke: bool) -> None:
    """Create a new admin API bearer token (shown once), or revoke tokens by label."""
    if revoke:
        count = c.ready().registry.revoke_token(label)
        click.echo(f"revoked {count} token(s) labelled {label}")
    else:
        click.echo(c.ready().registry.create_token(label))



# ------------------------------------------------------------------ relying parties
@main.group(cls=JpkiGroup)
def rp() -> None:
    """Registered relying parties (verifiers) for CRL/OCSP access control."""


@rp.command("add")
@click.argument("name")
@click.option("--kinds", type=click.Choice(["sign", "auth", "both"]), default="both", show_default=True)
@pass_ctx
def rp_add(c: Ctx, name: str, kinds: str) -> None:
    party, credential = c.ready().registry.add_relying_party(name, kinds)
    click.echo(f"relying party {party.name} ({party.kinds}); credential (shown once):")
    click.echo(credential)


@rp.command("list")
@pass_ctx
def rp_list(c: Ctx) -> None:
    for party in c.ready().registry.list_relying_parties():
        click.echo(f"{party.id}\t{party.name}\t{party.kinds}\t{'active' if party.active else 'removed'}")


@rp.command("remove")
@click.argument("name")
@pass_ctx
def rp_remove(c: Ctx, name: str) -> None:
    c.ready().registry.remove_relying_party(name)
    click.echo(f"removed {name}")


@ocsp_cli.ocsp.command("serve")
@click.option("--workers", type=int, default=None, help="Worker processes (default: ocsp.workers).")
@click.option("--port", type=int, default=None, help="TCP port (default: ocsp.port, 8081).")
@click.option("--threads", type=int, default=None,
              help="Python threads per worker (default: ocsp.threads; automatic: 1 with revocation_check "
                   "= epoch, 8 with database); live signing is capped by ocsp.live_sign_concurrency.")
@log_options
def ocsp_serve(workers: int | None, port: int | None, threads: int | None, log_format: str | None,
               access_log: bool | None) -> None:
    """Run the responder alone under granian on HOST (127.0.0.1) and its own port; the root path answers."""
    config = server.with_log_flags(load_config(), log_format, access_log)
    port = port or config.ocsp.port
    if not 0 < port < 65536:
        raise click.BadParameter(f"{port} is not a TCP port (1-65535)", param_hint="--port")
    if workers is not None and workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    if threads is not None and threads < 1:
        raise click.BadParameter("must be at least 1", param_hint="--threads")
    server.serve_ocsp(config, port, workers, threads)
    server.exit_now()


for _command in (ca_cli.ca, ca_cli.holder, ca_cli.cert, ca_cli.seed, crl_cli.crl, ocsp_cli.ocsp,
                 loadtest_cli.loadtest, kit_cli.card, kit_cli.scenarios, kit_timetravel.clock_cli,
                 audit_views.audit_cli):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
