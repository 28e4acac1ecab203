"""The authority's commands: ``jpki-mock ca``, ``holder``, ``cert`` and ``seed``
(added to ``jpki-mock`` by the composition root, :mod:`jpki_mock.cli`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from jpki_mock import errors
from jpki_mock.ca.inputs import BOTH
from jpki_mock.commands import Ctx, JpkiGroup, echo_json, pass_ctx
from jpki_mock.private import write_private
from jpki_mock.vocab import KINDS, HolderEvent, Reason

# click matches Enum choices by member name (SIGN), so the choices are the plain values.
_KINDS = [k.value for k in KINDS]
_REASON_LIST = ", ".join(r.rfc_name for r in Reason)

# ------------------------------------------------------------------ ca
@click.group(cls=JpkiGroup)
def ca() -> None:
    """CA generations: show, list, rollover, revoke."""


@ca.command("list")
@pass_ctx
def ca_list(c: Ctx) -> None:
    for i in c.ready().authority.issuers():
        state = f"revoked {i.revoked_at:%Y-%m-%d}" if i.revoked_at else "active"
        click.echo(f"{i.label}\tserial={i.certificate.serial_number}\t"
                   f"{i.not_before:%Y-%m-%d} .. {i.not_after:%Y-%m-%d}\t{state}")


@ca.command("show")
@click.option("--kind", type=click.Choice(_KINDS), required=True)
@click.option("--generation", type=int, default=None, help="Default: the current generation.")
@click.option("--pem", "fmt", flag_value="pem", help="Print the certificate as PEM.")
@click.option("--der", "fmt", flag_value="der", help="Write DER to stdout.")
@pass_ctx
def ca_show(c: Ctx, kind: str, generation: int | None, fmt: str | None) -> None:
    """Print a CA certificate."""
    issuer = c.ready().authority.issuer(kind, generation)
    if fmt == "pem":
        click.echo(issuer.pem, nl=False)
    elif fmt == "der":
        sys.stdout.buffer.write(issuer.der)
    else:
        cert = issuer.certificate
        click.echo(f"{issuer.label}\nsubject: {cert.subject.rfc4514_string()}\nserial: {cert.serial_number}\n"
                   f"not before: {issuer.not_before}\nnot after: {issuer.not_after}\n"
                   f"SKI: {issuer.ski.hex(':').upper()}")


@ca.command("rollover")
@click.option("--kind", type=click.Choice(_KINDS), required=True)
@pass_ctx
def ca_rollover(c: Ctx, kind: str) -> None:
    """Create a new key generation of a CA (same DN, new key)."""
    issuer = c.ready().authority.rollover(kind)
    click.echo(f"created {issuer.label} (serial {issuer.certificate.serial_number}); new certificates use it, "
               f"older generations stay verifiable and revocable")


def stdin_is_terminal() -> bool:
    """Whether a person can answer a prompt (a script or a pipe must pass --confirm)."""
    return sys.stdin.isatty()


@ca.command("revoke")
@click.option("--kind", type=click.Choice(_KINDS), required=True)
@click.option("--generation", type=int, required=True)
@click.option("--reason", required=True, help=f"One of: {_REASON_LIST}.")
@click.option("--confirm", default=None, metavar="KIND-gN",
              help="The CA being revoked, e.g. auth-g1 (asked for when stdin is a terminal).")
@pass_ctx
def ca_revoke(c: Ctx, kind: str, generation: int, reason: str, confirm: str | None) -> None:
    """Revoke a CA generation's certificate (it goes on the ARL).  Final: a revoked CA is never
    reinstated, so the CA's name must be typed (or passed with --confirm)."""
    label = f"{kind}-g{generation}"
    if confirm is None:
        if not stdin_is_terminal():
            raise errors.InvalidInput(f"is required to revoke a CA: pass --confirm {label}", field="confirm",
                                      allowed=f"--confirm {label}")
        confirm = click.prompt(f"Revoking {label} is final; relying parties that check the ARL will reject every "
                               f"certificate it issued. Type {label} to confirm", default="", show_default=False)
    issuer = c.ready().authority.revoke_ca(kind, generation, reason, confirm)
    click.echo(f"revoked {issuer.label} at {issuer.revoked_at}")


# ------------------------------------------------------------------ holders
@click.group(cls=JpkiGroup)
def holder() -> None:
    """Card holders: add, show, list, events."""


@holder.command("add")
@click.option("--name", required=True, help="Surname, full-width space, given name.")
@click.option("--dob", "date_of_birth", required=True, help="1980-12-31 or the JPKI form 319801231.")
@click.option("--gender", required=True, type=click.Choice(["1", "2", "3"]), help="1 male, 2 female, 3 unknown.")
@click.option("--address", required=True, help="From the prefecture, no postcode, at most 200 characters.")
@click.option("--municipality", default=None, help="5-digit code; default: derived from the address.")
@click.option("--name-flags", default=None)
@click.option("--address-flags", default=None)
@click.option("--card-expiry", default=None, help="YYYY-MM-DD; default: 10th birthday (5th under 18).")
@pass_ctx
def holder_add(c: Ctx, /, **data: Any) -> None:
    data = {k: v for k, v in data.items() if v is not None}
    h = c.ready().authority.create_holder(data)
    click.echo(f"holder {h.id}: {h.name} ({h.date_of_birth}), municipality {h.municipality}, "
               f"card until {h.card_expiry}")


@holder.command("show")
@click.argument("holder_id")
@pass_ctx
def holder_show(c: Ctx, holder_id: str) -> None:
    h = c.ready().authority.get_holder(holder_id)
    echo_json({"id": h.id, "name": h.name, "date_of_birth": h.date_of_birth, "gender": h.gender,
               "address": h.address, "municipality": h.municipality, "card_expiry": str(h.card_expiry),
               "state": h.state, "certificates": [
                   {"kind": x.kind, "serial": x.serial, "status": x.status, "reason": x.reason,
                    "not_after": str(x.not_after)} for x in h.certificates]})


@holder.command("list")
@click.option("--municipality", default=None)
@click.option("--state", default=None)
@click.option("--limit", default=100, show_default=True)
@click.option("--offset", default=0, show_default=True)
@pass_ctx
def holder_list(c: Ctx, /, **kw: Any) -> None:
    for h in c.ready().authority.list_holders(**kw):
        click.echo(f"{h.id}\t{h.name}\t{h.municipality}\t{h.state}")


@holder.command("event")
@click.argument("holder_id")
@click.argument("event", type=click.Choice([e.value for e in HolderEvent]))
@click.option("--set", "changes", multiple=True, metavar="FIELD=VALUE", help="For 'change': a changed basic-four item.")
@click.option("--reason", default=None, help=f"For 'request': the revocation reason, one of: {_REASON_LIST}.")
@click.option("--kinds", default=None, help="For 'request'/'renewal': sign, auth or both.")
@click.option("--p12-passphrase", default=None, help="For 'renewal': protects the new generated keys.")
@click.option("--p12-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@pass_ctx
def holder_event(c: Ctx, holder_id: str, event: str, changes: tuple[str, ...], reason: str | None,
                 kinds: str | None, p12_passphrase: str | None, p12_out: Path | None) -> None:
    """Apply a resident-registry / card event: change, death, card_return, renewal, loss, request."""
    data: dict[str, Any] = {}
    if event == "change":
        parsed = {}
        for item in changes:
            key, sep, value = item.partition("=")
            if not sep:
                raise errors.InvalidInput(f"{item!r} is not FIELD=VALUE", field="--set")
            parsed[key] = value
        data["changes"] = parsed
    elif changes:
        raise errors.InvalidInput("only for the 'change' event", field="--set")
    if reason is not None:
        data["reason"] = reason
    if kinds is not None:
        data["kinds"] = kinds
    if p12_passphrase is not None:
        data["pkcs12_passphrase"] = p12_passphrase
    result = c.ready().authority.event(holder_id, event, **data)
    issued = result.pop("issued", [])
    echo_json(result)
    for item in issued:
        click.echo(f"issued {item.certificate.kind} serial {item.certificate.serial} ({item.issuer.label})")
        if item.pkcs12 is not None and p12_out is not None:
            path = p12_out.with_name(f"{p12_out.stem}-{item.certificate.kind}{p12_out.suffix or '.p12'}")
            write_private(path, item.pkcs12)
            click.echo(f"  key and certificate: {path}")


# ------------------------------------------------------------------ certificates
@click.group(cls=JpkiGroup)
def cert() -> None:
    """Certificates: issue, show, list, expiring, revoke, release."""


@cert.command("issue")
@click.option("--holder", "holder_id", required=True)
@click.option("--kind", "kinds", type=click.Choice([*_KINDS, BOTH]), default=BOTH, show_default=True)
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--csr", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--p12-passphrase", default=None, help="Generate the key here and protect it with this passphrase.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True)
@pass_ctx
def cert_issue(c: Ctx, holder_id: str, kinds: str, public_key: Path | None, csr: Path | None,
               p12_passphrase: str | None, out_dir: Path) -> None:
    """Issue a signature and/or user-authentication certificate to a holder."""
    spec: dict[str, Any] = {}
    if public_key:
        spec["public_key"] = public_key.read_bytes()
    if csr:
        spec["csr"] = csr.read_bytes()
    if p12_passphrase:
        spec["pkcs12_passphrase"] = p12_passphrase
    authority = c.ready().authority
    issued = authority.issue(holder_id, kinds, **spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    from jpki_mock.ca.issuance import der_to_pem

    for item in issued:
        crt = item.certificate
        pem_path = out_dir / f"{crt.kind}-{crt.serial}.pem"
        pem_path.write_text(der_to_pem(authority.der_of(crt)))
        click.echo(f"issued {crt.kind} serial {crt.serial} by {item.issuer.label}, until {crt.not_after}: {pem_path}")
        if item.pkcs12 is not None:
            p12_path = out_dir / f"{crt.kind}-{crt.serial}.p12"
            write_private(p12_path, item.pkcs12)
            click.echo(f"  key + certificate (PKCS#12): {p12_path}")


@cert.command("show")
@click.option("--issuer", required=True, help="sign, auth, or a generation such as sign-g2.")
@click.option("--serial", required=True)
@click.option("--pem", "fmt", flag_value="pem")
@click.option("--der", "fmt", flag_value="der")
@pass_ctx
def cert_show(c: Ctx, issuer: str, serial: str, fmt: str | None) -> None:
    from jpki_mock.ca.issuance import der_to_pem
    from jpki_mock.ca.status import REASON_NAMES

    rt = c.ready()
    crt = rt.authority.get_certificate(issuer, serial)
    if fmt == "pem":
        click.echo(der_to_pem(rt.authority.der_of(crt)), nl=False)
    elif fmt == "der":
        sys.stdout.buffer.write(rt.authority.der_of(crt))
    else:
        echo_json({"issuer": rt.authority.issuer_by_id(crt.ca_id).label, "kind": crt.kind, "serial": crt.serial,
                   "holder": crt.holder_id, "municipality": crt.municipality, "status": crt.status,
                   "reason": REASON_NAMES.get(crt.reason) if crt.reason is not None else None,
                   "revoked_at": crt.revoked_at, "not_before": crt.not_before, "not_after": crt.not_after})


@cert.command("list")
@click.option("--kind", default=None)
@click.option("--status", default=None, help="good, revoked, hold or expired.")
@click.option("--municipality", default=None)
@click.option("--holder", default=None)
@click.option("--generation", default=None)
@click.option("--limit", default=100, show_default=True)
@click.option("--offset", default=0, show_default=True)
@pass_ctx
def cert_list(c: Ctx, /, **kw: Any) -> None:
    for crt in c.ready().authority.list_certificates(**kw):
        click.echo(f"{crt.kind}\t{crt.serial}\t{crt.status}\t{crt.reason if crt.reason is not None else ''}\t"
                   f"{crt.municipality}\t{crt.not_after:%Y-%m-%d}")


@cert.command("expiring")
@click.option("--days", required=True, type=int)
@click.option("--limit", default=100, show_default=True)
@pass_ctx
def cert_expiring(c: Ctx, days: int, limit: int) -> None:
    """Good certificates whose validity ends within DAYS (J-LIS's expiry notices)."""
    rt = c.ready()
    total = rt.authority.count_expiring(days)
    for crt in rt.authority.expiring(days, limit=limit):
        click.echo(f"{crt.kind}\t{crt.serial}\tholder {crt.holder_id}\t{crt.not_after:%Y-%m-%d}")
    click.echo(f"total={total}")


@cert.command("revoke")
@click.option("--issuer", required=True, help="sign, auth, or a generation such as sign-g2.")
@click.option("--serial", required=True)
@click.option("--reason", default=Reason.UNSPECIFIED.rfc_name, show_default=True, help=f"One of: {_REASON_LIST}.")
@pass_ctx
def cert_revoke(c: Ctx, issuer: str, serial: str, reason: str) -> None:
    crt = c.ready().authority.revoke(issuer, serial, reason)
    click.echo(f"revoked {crt.kind} serial {crt.serial} ({reason}) at {crt.revoked_at}")


@cert.command("release")
@click.option("--issuer", required=True)
@click.option("--serial", required=True)
@pass_ctx
def cert_release(c: Ctx, issuer: str, serial: str) -> None:
    """Release a hold: always refused, as in JPKI."""
    c.ready().authority.release_hold(issuer, serial)


# ------------------------------------------------------------------ seeding
@click.command()
@click.option("--holders", type=click.IntRange(1, 50_000_000), required=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Signing processes (default: CPU count); with --lazy, row-generating processes.")
@click.option("--seed", "rng_seed", type=int, default=None, help="Random seed for a reproducible mix.")
@click.option("--keys", "key_pool", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="Size of the reused subject-key pool (seeding only).")
@click.option("--public-keys", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="PEM file of subject public keys to use instead of a generated pool (seeding only).")
@click.option("--progress/--no-progress", default=True)
@click.option("--lazy", is_flag=True,
              help="National scale: certificate records only, each signed on first use (download, card).")
@pass_ctx
def seed(c: Ctx, holders: int, workers: int | None, rng_seed: int | None, key_pool: int, public_keys: Path | None,
         progress: bool, lazy: bool) -> None:
    """Issue N holders' real, signed certificates fast, with a realistic revocation mix."""
    from jpki_mock.ca.seed import seed_holders, split_pem

    supplied = split_pem(public_keys.read_bytes(), "--public-keys") if public_keys else None
    if lazy:
        from jpki_mock.ca.bulkseed import seed_records

        result = seed_records(c.ready(), holders, rng_seed=rng_seed, key_pool=key_pool, public_keys=supplied,
                              progress=progress, workers=workers)
    else:
        result = seed_holders(c.ready(), holders, workers=workers, rng_seed=rng_seed, key_pool=key_pool,
                              public_keys=supplied, progress=progress)
    click.echo(result.summary_line())
