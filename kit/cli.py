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
sign_password_opt = click.option("--password", default=None, help="Signature password.")


def document_opt(what: str) -> Any:
    return click.option("--in", "infile", type=click.File("rb"), required=True, help=f"{what} ('-' for stdin).")

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
    cert = x509.load_der_x509_certificate(service.authority.der_of(row))
    _write(out, cert.public_bytes(Encoding.DER if der else Encoding.PEM), f"{kind} certificate {row.serial}")


@card.command("sign")
@holder_arg
@document_opt("The document")
@click.option("--scheme", type=click.Choice(SCHEMES), default="cms", show_default=True,
              help="cms: detached CMS SignedData (DER); pkcs1: RSASSA-PKCS1-v1_5 SHA-256; pss: RSASSA-PSS SHA-256.")
@sign_password_opt
@out_opt
def card_sign(holder_id: str, infile, scheme: str, password: str | None, out: Path | None) -> None:
    """Sign a document with the signature key."""
    data = infile.read(MAX_DATA + 1)
    signature, cert = _service().sign(holder_id, data, _secret(password, "signature password"), scheme)
    _write(out, signature, f"{scheme} signature by certificate {cert.serial}")


@card.command("sign-pdf")
@holder_arg
@document_opt("The PDF")
@sign_password_opt
@click.option("--ltv", is_flag=True,
              help="Embed the certificate's OCSP response and CRL fetched from the mock "
                   "(B-LT; with --tsa-url also timestamped: B-LTA).")
@click.option("--tsa-url", default=None, help="An RFC 3161 time-stamping authority: adds a signature timestamp (B-T).")
@click.option("--tsa-cert", "tsa_certs", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              help="A certificate (PEM or DER) anchoring the TSA's, for --ltv; repeatable.")
@click.option("--reason", default=None, help="The signature dictionary's /Reason.")
@out_opt
def card_sign_pdf(holder_id: str, infile, password: str | None, ltv: bool, tsa_url: str | None,
                  tsa_certs: tuple[Path, ...], reason: str | None, out: Path | None) -> None:
    """Sign a PDF with the signature key: PAdES baseline (B-B; B-T with --tsa-url; --ltv embeds
    revocation data)."""
    from jpki_mock.kit.pdf import read_certificate, sign_pdf

    data = infile.read(MAX_DATA + 1)
    roots = [read_certificate(p.read_bytes(), "--tsa-cert") for p in tsa_certs]
    signed, cert = sign_pdf(_service(), holder_id, data, _secret(password, "signature password"), ltv=ltv,
                            tsa_url=tsa_url, tsa_roots=roots, reason=reason)
    _write(out, signed, f"PAdES signature by certificate {cert.serial}")


@card.command("sign-xml")
@holder_arg
@document_opt("The XML document")
@sign_password_opt
@out_opt
def card_sign_xml(holder_id: str, infile, password: str | None, out: Path | None) -> None:
    """Sign an XML document with the signature key: an enveloped XMLDSig (RSA-SHA256, the
    certificate in KeyInfo/X509Data)."""
    from jpki_mock.kit.xmldsig import sign_xml

    data = infile.read(MAX_DATA + 1)
    signed, cert = sign_xml(_service(), holder_id, data, _secret(password, "signature password"))
    _write(out, signed, f"XML signature by certificate {cert.serial}")


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


@card.command("renew")
@holder_arg
@click.option("--sign-password", default=None,
              help="New signature password: 6-16 upper-case letters and digits (none under 15).")
@click.option("--auth-pin", default=None, help="New user-authentication PIN: 4 digits.")
def card_renew(holder_id: str, sign_password: str | None, auth_pin: str | None) -> None:
    """Renew HOLDER's card: new key pairs on it, new certificates; every current certificate (valid or
    on hold) revoked as superseded.  Also the way back for a lost card found, or re-issued."""
    service = _service()
    holder = service.authority.get_holder(holder_id)
    from jpki_mock.ca.authority import MIN_SIGN_AGE
    from jpki_mock.kit.card import age_today

    if sign_password is None and age_today(holder, service.clock.now()) >= MIN_SIGN_AGE:
        sign_password = click.prompt("new signature password (6-16 A-Z 0-9)", hide_input=True,
                                     confirmation_prompt=True)
    _echo_state(service.renew(holder_id, auth_pin=_secret(auth_pin, "new user-auth PIN (4 digits)"),
                              sign_password=sign_password))


@card.command("insert")
@holder_arg
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="The vpcd slot's port: reader k of `card reader start --port BASE` is BASE + k "
                   "(default: the first reader, BASE; 35963, vpcd's own default, with --system).")
@click.option("--reader-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The private pcscd's directory (default: DATA_DIR/pcsc, as `card reader start`).")
@click.option("--system", is_flag=True,
              help="Connect to a vpcd in this network namespace (the system pcscd with vpcd's own "
                   "configuration) instead of the private pcscd.")
@click.option("--trace", is_flag=True, help="Log every APDU (PINs masked) to the card's log file.")
@click.option("--foreground", is_flag=True, help="Serve the card in this process until interrupted.")
def card_insert(holder_id: str, port: int | None, reader_dir: Path | None, system: bool, trace: bool,
                foreground: bool) -> None:
    """Put HOLDER's card in a virtual PC/SC reader (vpcd): the JPKI application over APDUs,
    on the same card state (tries, keys) the REST API and these commands use."""
    from jpki_mock.kit import pcsc, reader

    service = _service()
    holder = service.state(holder_id).holder.id
    data_dir = service.authority.config.data_dir.resolve()
    directory = None if system else (reader_dir or data_dir / "pcsc").resolve()
    daemon = None if directory is None else pcsc.running(directory)  # a clear error now, not in the card's log
    port = port or (daemon.base_port if daemon else reader.DEFAULT_PORT)
    if foreground:
        reader.run_foreground(service, holder, port, daemon.netns if daemon else None, trace, click.echo)
        return
    entry = reader.insert(data_dir, holder, port, directory, env={"JPKI_MOCK_DATA": str(data_dir)}, trace=trace)
    click.echo(f"inserted holder {holder}'s card in the vpcd slot at port {entry.port} "
               f"(pid {entry.pid}, log {entry.log})")


@card.command("remove")
@click.argument("holder_id", metavar="[HOLDER]", required=False)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Take out the card on this port.")
def card_remove(holder_id: str | None, port: int | None) -> None:
    """Take a card out of its virtual reader (HOLDER's, or the one on --port; alone: every card)."""
    from jpki_mock.kit import reader

    service = _service()
    holder = service.authority.get_holder(holder_id).id if holder_id is not None else None
    for entry in reader.remove(service.authority.config.data_dir.resolve(), holder=holder, port=port):
        click.echo(f"removed holder {entry.holder}'s card from port {entry.port}")


@card.group("reader")
def card_reader() -> None:
    """A private pcscd with vpcd reader slots on 127.0.0.1 (reader k = port BASE + k)."""


reader_dir_opt = click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
                              help="Where pcscd's configuration, socket and log live (default: DATA_DIR/pcsc).")


def _reader_dir(directory: Path | None) -> Path:
    if directory is not None:
        return directory
    from jpki_mock.config import load_config

    return load_config().data_dir / "pcsc"


@card_reader.command("start")
@reader_dir_opt
@click.option("--port", type=click.IntRange(1, 65535), default=35963, show_default=True,
              help="Port of the first slot.")
@click.option("--readers", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--apdu-log", is_flag=True, help="pcscd logs every APDU too (to its log file).")
def card_reader_start(directory: Path | None, port: int, readers: int, apdu_log: bool) -> None:
    """Start the private pcscd and print the line that points PC/SC clients at it."""
    from jpki_mock.kit import pcsc

    daemon = pcsc.start(_reader_dir(directory), port, readers, apdu_log)
    click.echo(f"export PCSCLITE_CSOCK_NAME={daemon.socket}")
    click.echo(f"# pcscd pid {daemon.pid}: {readers} reader slot(s) at 127.0.0.1:{port}-{port + readers - 1}", err=True)


@card_reader.command("stop")
@reader_dir_opt
def card_reader_stop(directory: Path | None) -> None:
    """Stop the private pcscd (by its PID)."""
    from jpki_mock.kit import pcsc

    daemon = pcsc.running(_reader_dir(directory))
    pcsc.stop(daemon)
    click.echo(f"stopped pcscd (pid {daemon.pid})")


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
