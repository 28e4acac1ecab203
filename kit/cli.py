"""``jpki-mock card ...`` (the software card) and ``jpki-mock scenarios ...`` (the catalog).

PINs and passwords are asked for (hidden) when not given as options.  Domain errors are
translated to ``error: ...`` and an exit code by ``jpki-mock``'s own group (ca/cli.py):
a wrong PIN exits 6 and says how many tries are left, a locked PIN exits 4.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from jpki_mock.commands import open_runtime
from jpki_mock.errors import InvalidInput
from jpki_mock.kit.card import KINDS as KIND_NAMES
from jpki_mock.kit.card import MAX_DATA, SCHEMES, CardService, CardState
from jpki_mock.private import write_private


def _service() -> CardService:

    rt = open_runtime()
    rt.store.require_initialised()
    return CardService(rt.authority)


def _secret(value: str | None, prompt: str) -> str:
    return value if value is not None else click.prompt(prompt, hide_input=True)


def _echo_state(state: CardState) -> None:
    click.echo(json.dumps(state.as_dict(), indent=2))


def _write(out: Path | None, data: bytes, what: str, private: bool = False) -> None:
    """To ``out``, or standard output; ``private`` (a key): mode 0600 from the first byte."""
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    elif private:
        write_private(out, data)
    else:
        out.write_bytes(data)
        click.echo(f"wrote {what}: {out} ({len(data)} bytes)")


holder_arg = click.argument("holder_id", metavar="HOLDER")
out_opt = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                       help="Write here instead of standard output.")


@click.group("card")
def card() -> None:
    """The software My Number card: keys made on the card, PINs with the real JPKI rules."""


@card.command("create")
@holder_arg
@click.option("--sign-password", default=None,
              help="Signature password: 6-16 upper-case letters and digits (none for a holder under 15).")
@click.option("--auth-pin", default=None, help="User-authentication PIN: 4 digits.")
def card_create(holder_id: str, sign_password: str | None, auth_pin: str | None) -> None:
    """Give HOLDER a card: two key pairs generated on it, certified by the CAs."""
    service = _service()
    holder = service.authority.get_holder(holder_id)
    from jpki_mock.ca.authority import MIN_SIGN_AGE
    from jpki_mock.kit.card import age_today

    if sign_password is None and age_today(holder, service.clock.now()) >= MIN_SIGN_AGE:
        sign_password = click.prompt("signature password (6-16 A-Z 0-9)", hide_input=True, confirmation_prompt=True)
    state = service.create(holder_id, auth_pin=_secret(auth_pin, "user-auth PIN (4 digits)"),
                           sign_password=sign_password)
    for kind, cert in state.certificates.items():
        label = service.authority.issuer_by_id(cert.ca_id).label
        what = "signature" if kind == "sign" else "user-authentication"
        click.echo(f"{what} key generated on the card; certificate serial {cert.serial} issued by {label}, "
                   f"valid until {cert.not_after:%Y-%m-%d %H:%M:%SZ}")
    if "sign" not in state.certificates:
        click.echo("no signature certificate: the holder is under 15")


@card.command("show")
@holder_arg
def card_show(holder_id: str) -> None:
    """Tries left, lock state and certificates on HOLDER's card."""
    _echo_state(_service().state(holder_id))


@card.command("cert")
@holder_arg
@click.option("--kind", type=click.Choice(KIND_NAMES), required=True)
@click.option("--password", default=None, help="Signature password (needed for --kind sign).")
@click.option("--der", is_flag=True, help="DER instead of PEM.")
@out_opt
def card_cert(holder_id: str, kind: str, password: str | None, der: bool, out: Path | None) -> None:
    """Read a certificate from the card (the signature one needs the password, as on the card)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    service = _service()
    if kind == "sign":
        password = _secret(password, "signature password")
    row = service.certificate(holder_id, kind, password)
    cert = x509.load_der_x509_certificate(row.der)
    _write(out, cert.public_bytes(Encoding.DER if der else Encoding.PEM), f"{kind} certificate {row.serial}")


@card.command("sign")
@holder_arg
@click.option("--in", "infile", type=click.File("rb"), required=True, help="The document ('-' for stdin).")
@click.option("--scheme", type=click.Choice(SCHEMES), default="cms", show_default=True,
              help="cms: detached CMS SignedData (DER); pkcs1: RSASSA-PKCS1-v1_5 SHA-256; pss: RSASSA-PSS SHA-256.")
@click.option("--password", default=None, help="Signature password.")
@out_opt
def card_sign(holder_id: str, infile, scheme: str, password: str | None, out: Path | None) -> None:
    """Sign a document with the signature key."""
    data = infile.read(MAX_DATA + 1)
    signature, cert = _service().sign(holder_id, data, _secret(password, "signature password"), scheme)
    _write(out, signature, f"{scheme} signature by certificate {cert.serial}")


@card.command("auth")
@holder_arg
@click.option("--challenge", "infile", type=click.File("rb"), required=True, help="The service's challenge bytes.")
@click.option("--pin", default=None, help="User-authentication PIN.")
@out_opt
def card_auth(holder_id: str, infile, pin: str | None, out: Path | None) -> None:
    """Answer a login challenge: sign it with the user-authentication key (PKCS#1 v1.5, SHA-256)."""
    data = infile.read()
    signature, cert = _service().authenticate(holder_id, data, _secret(pin, "user-auth PIN"))
    _write(out, signature, f"challenge signature by user-auth certificate {cert.serial}")


@card.command("export")
@holder_arg
@click.option("--kind", type=click.Choice(KIND_NAMES), required=True)
@click.option("--pin", default=None, help="The PIN / password of that key.")
@click.option("--p12-passphrase", default=None, help="Protects the file (default: the PIN / password).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def card_export(holder_id: str, kind: str, pin: str | None, p12_passphrase: str | None, out: Path) -> None:
    """Export one key with its certificate chain as PKCS#12, for tools that cannot use the card."""
    p12 = _service().export_pkcs12(holder_id, kind, _secret(pin, f"{kind} PIN / password"), p12_passphrase)
    _write(out, p12, "PKCS#12", private=True)


@card.command("unlock")
@holder_arg
@click.option("--kind", type=click.Choice(KIND_NAMES), required=True)
def card_unlock(holder_id: str, kind: str) -> None:
    """Operator: restore the try counter of a locked PIN (the holder still knows it)."""
    _echo_state(_service().unlock(holder_id, kind))


@card.command("reset")
@holder_arg
@click.option("--kind", type=click.Choice(KIND_NAMES), required=True)
@click.option("--new-pin", default=None, help="The new PIN / password.")
def card_reset(holder_id: str, kind: str, new_pin: str | None) -> None:
    """Operator: new PIN, new key pair and new certificate (the old one is revoked as superseded)."""
    _echo_state(_service().reset(holder_id, kind, _secret(new_pin, "new PIN / password")))


@click.group("scenarios")
def scenarios() -> None:
    """The scenario catalog: every certificate state a verifier must handle, with expected outcomes."""


@scenarios.command("list")
def scenarios_list() -> None:
    """The catalog's items and what each one teaches."""
    from jpki_mock.kit.scenarios import CATALOG

    for item in CATALOG:
        click.echo(f"{item.name:28s} {item.expected_text():26s} {item.description}")


#: the catalog's server port by default: beside 8080 (the mock) and 8081 (a standalone responder)
CATALOG_PORT = 8090


@scenarios.command("build")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where the manifest, certificates and PKCS#12 files go.")
@click.option("--data-dir", "catalog_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The catalog's own data directory, with its own CA (default: <your data directory>/scenarios).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help=f"Port the catalog's server will listen on, written into its certificates' CRL and OCSP URLs "
                   f"(default {CATALOG_PORT}; fixed when its data directory is created).")
@click.option("--into-my-ca", is_flag=True,
              help="Build into your own CA instead: adds holders and may roll both CAs over (asks first).")
@click.option("--yes", is_flag=True, help="With --into-my-ca: do not ask (scripts).")
@click.option("--progress/--no-progress", default=True)
def scenarios_build(out_dir: Path, catalog_dir: Path | None, port: int | None, into_my_ca: bool, yes: bool,
                    progress: bool) -> None:
    """Build the catalog's holders and certificates, and write bundles and OUT/manifest.json.

    By default in a data directory of its own with its own CA, so your CA's generations and
    certificates stay as they are; serve it with the command printed at the end."""
    from jpki_mock.config import load_config
    from jpki_mock.kit.scenarios import build, planned_changes

    user = load_config()
    if into_my_ca:
        if catalog_dir is not None or port is not None:
            raise InvalidInput("--data-dir and --port are for the catalog's own CA, not with --into-my-ca",
                               field="into_my_ca")
        rt = open_runtime(user)
        rt.store.require_initialised()
        click.echo(f"scenarios build --into-my-ca will change the CA in {user.data_dir}:")
        for change in planned_changes(rt.authority):
            click.echo(f"  - {change}")
        if not yes:
            if not sys.stdin.isatty():
                rt.close()
                raise InvalidInput("changes your CA: pass --yes to confirm (standard input is not a terminal), "
                                   "or leave out --into-my-ca to build into the catalog's own CA", field="yes",
                                   allowed="--yes")
            if not click.confirm("Change your CA?", default=False):
                rt.close()
                raise click.Abort()
        where = f"your CA in {user.data_dir}"
    else:
        catalog_dir = catalog_dir or Path(user.data_dir) / "scenarios"
        rt = _catalog_runtime(user, catalog_dir, port)
        where = f"the catalog's own CA in {catalog_dir} (your CA in {user.data_dir} is unchanged)"
    try:
        manifest = build(rt, out_dir, progress=progress)
        catalog_port = rt.config.port
    finally:
        rt.close()
    counts: dict[str, Any] = {}
    for item in manifest["items"]:
        counts[item["expected"]["outcome"]] = counts.get(item["expected"]["outcome"], 0) + 1
    click.echo(f"catalog {manifest['catalog']}: {len(manifest['items'])} items "
               f"({', '.join(f'{n} {k}' for k, n in counts.items())})")
    click.echo(f"built into {where}")
    click.echo(f"manifest: {out_dir / 'manifest.json'}")
    if not into_my_ca:
        # The server publishes the CRLs that are due when it starts: the first time, all of them.
        click.echo(f"serve it (CRLs and OCSP for the catalog): JPKI_MOCK_DATA={catalog_dir} PORT={catalog_port} "
                   "jpki-mock serve")



def _catalog_runtime(user: Any, catalog_dir: Path, port: int | None) -> Any:
    """The catalog's own instance in ``catalog_dir``: created (configuration, CA, admin token)
    on first use, reused after (a second build adds a new set of holders, as into any CA)."""
    from jpki_mock.config import load_config
    from jpki_mock.kit.scenarios import catalog_config_text
    from jpki_mock.private import private_dir

    config_file = catalog_dir / "config.toml"
    if not config_file.exists():
        private_dir(catalog_dir)
        passphrase = user.key_passphrase or secrets.token_urlsafe(24)
        write_private(config_file, catalog_config_text(user.replace(key_passphrase=passphrase), port or CATALOG_PORT))
    # Only its own file: the environment's PORT or database URL belong to the user's instance.
    config = load_config({}, data_dir=catalog_dir)
    if port is not None and port != config.port:
        raise InvalidInput(f"the catalog in {catalog_dir} was made for port {config.port}", field="--port",
                           allowed=f"--port {config.port}, or another --data-dir")
    rt = open_runtime(config)
    if not rt.store.is_initialised():
        token = rt.authority.init(config.hierarchy)
        write_private(catalog_dir / "admin-token", token + "\n")
    return rt
