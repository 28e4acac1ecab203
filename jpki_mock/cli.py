"""``jpki-mock``: the command-line root, one of the composition root's three modules.

It opens the runtime for every command (:func:`jpki_mock.commands.set_runtime_opener`) and
adds each part's commands by name: nothing is discovered from a table of module names.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from jpki_mock import datadir, errors, server
from jpki_mock.ca import cli as ca_cli
from jpki_mock.commands import Ctx, JpkiGroup, pass_ctx, set_runtime_opener
from jpki_mock.config import load_config, write_initial_config
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
            click.echo(f"wrote {config.config_file} (key passphrase for the CA keys; keep it private)")
        config = config.replace(key_passphrase=passphrase)
    rt = Runtime.open(config)
    token = rt.authority.init(config.hierarchy)
    for issuer in rt.authority.issuers():
        click.echo(f"created {issuer.label}: {issuer.certificate.subject.rfc4514_string()} "
                   f"(serial {issuer.certificate.serial_number}, until {issuer.not_after:%Y-%m-%d %H:%M:%SZ})")
    token_file = Path(config.data_dir) / "admin-token"
    write_private(token_file, token + "\n")
    click.echo(f"admin API token (shown once; also saved to {token_file} for local use):")
    click.echo(token)


@main.command()
@click.option("--workers", type=int, default=None, help="Worker processes (default: config workers).")
@click.option("--no-background", is_flag=True, help="Do not run the CRL schedule in this server.")
@click.option("--init/--no-init", "do_init", default=False, help="Initialise the CA first if needed (make run).")
def serve(workers: int | None, no_background: bool, do_init: bool) -> None:
    """Run the combined server (admin API, CRLs, OCSP) under granian on HOST:PORT."""
    if do_init:
        ctx = click.get_current_context()
        ctx.invoke(init, hierarchy=None, if_needed=True)
    server.serve(load_config(), workers=workers, background=not no_background)


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
def ocsp_serve(workers: int | None, port: int | None, threads: int | None) -> None:
    """Run the responder alone under granian on HOST (127.0.0.1) and its own port; the root path answers."""
    config = load_config()
    port = port or config.ocsp.port
    if not 0 < port < 65536:
        raise click.BadParameter(f"{port} is not a TCP port (1-65535)", param_hint="--port")
    if workers is not None and workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    if threads is not None and threads < 1:
        raise click.BadParameter("must be at least 1", param_hint="--threads")
    server.serve_ocsp(config, port, workers, threads)


for _command in (ca_cli.ca, ca_cli.holder, ca_cli.cert, ca_cli.seed, crl_cli.crl, ocsp_cli.ocsp,
                 loadtest_cli.loadtest, kit_cli.card, kit_cli.scenarios, kit_timetravel.clock_cli):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
