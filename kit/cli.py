"""``jpki-mock card ...`` (the software card) and ``jpki-mock scenarios ...`` (the catalog).

PINs and passwords are asked for (hidden) when not given as options.  Domain errors are
translated to ``error: ...`` and an exit code by ``jpki-mock``'s own group (ca/cli.py):
a wrong PIN exits 6 and says how many tries are left, a locked PIN exits 4.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from jpki_mock.commands import open_runtime
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


@click.group("scenarios")
def scenarios() -> None:
    """The scenario catalog: every certificate state a verifier must handle, with expected outcomes."""


@scenarios.command("list")
def scenarios_list() -> None:
    """The catalog's items and what each one teaches."""
    from jpki_mock.kit.scenarios import CATALOG

    for item in CATALOG:
        click.echo(f"{item.name:28s} {item.expected_text():26s} {item.description}")


@scenarios.command("build")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--progress/--no-progress", default=True)
def scenarios_build(out_dir: Path, progress: bool) -> None:
    """Create the catalog's holders and certificates in the configured CA; write bundles and
    OUT/manifest.json."""

    from jpki_mock.kit.scenarios import build

    rt = open_runtime()
    rt.store.require_initialised()
    try:
        manifest = build(rt, out_dir, progress=progress)
    finally:
        rt.close()
    counts: dict[str, Any] = {}
    for item in manifest["items"]:
        counts[item["expected"]["outcome"]] = counts.get(item["expected"]["outcome"], 0) + 1
    click.echo(f"catalog {manifest['catalog']}: {len(manifest['items'])} items "
               f"({', '.join(f'{n} {k}' for k, n in counts.items())})")
    click.echo(f"manifest: {out_dir / 'manifest.json'}")
