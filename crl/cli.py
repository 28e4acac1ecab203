"""``jpki-mock crl``: publish now, list the streams, show one CRL."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from jpki_mock import errors
from jpki_mock.commands import Ctx, JpkiGroup, echo_json, pass_ctx
from jpki_mock.crl.publisher import CrlDeps, JsonRecord, Publisher, record_json
from jpki_mock.vocab import Reason

if TYPE_CHECKING:  # imported where used at run time: `jpki-mock --help` need not load cryptography
    from cryptography import x509

CA_HELP = "sign, auth (every generation) or sign-g2 / auth-g1 (one generation). Default: all."
PARTITION_HELP = "full, arl or a 5-digit municipality code. Default: all."


@click.group(cls=JpkiGroup)
def crl() -> None:
    """CRLs: publish now, list streams, show a CRL (docs/crl.md)."""


@crl.command("publish")
@click.option("--ca", "ca_ref", default=None, help=CA_HELP)
@click.option("--partition", default=None, help=PARTITION_HELP)
@click.option("--delta/--complete", "delta", default=None,
              help="Only delta CRLs / only complete CRLs (default: both when crl.delta is on).")
@click.option("--json", "as_json", is_flag=True, help="Print the published CRLs as JSON.")
@pass_ctx
def publish(c: Ctx, ca_ref: str | None, partition: str | None, delta: bool | None, as_json: bool) -> None:
    """Build, check and publish CRLs now (the schedule does this every crl.period_seconds)."""
    pub = _publisher(c)
    streams = pub.select(ca_ref, partition, delta)
    results = pub.publish_many(streams, progress=sys.stderr.isatty())
    base = pub.config.public_url
    if as_json:
        echo_json([record_json(rec, s, base) for s, rec in results])
        return
    for s, rec in results:
        click.echo(f"{s.label:22s} number {rec.number:<6d} {rec.entries:>9d} entries  {base}{s.path()}")


@crl.command("list")
@click.option("--ca", "ca_ref", default=None, help=CA_HELP)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_streams(c: Ctx, ca_ref: str | None, as_json: bool) -> None:
    """Every CRL stream with its latest number, thisUpdate, nextUpdate and entry count."""
    pub = _publisher(c)
    base = pub.config.public_url
    rows: list[JsonRecord] = []
    for s in pub.select(ca_ref):
        rec = pub.latest(s)
        rows.append(record_json(rec, s, base) if rec else {"stream": s.label, "number": None, "url": base + s.path()})
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        if r["number"] is None:
            click.echo(f"{r['stream']:22s} (not published yet)")
        else:
            click.echo(f"{r['stream']:22s} number {r['number']:<6d} this {r['this_update']}  next {r['next_update']}"
                       f"  {r['entries']:>9d} entries")


@crl.command("show")
@click.option("--ca", "ca_ref", required=True, help="sign-g1, auth-g2, ... (sign/auth: the current generation).")
@click.option("--partition", default="full", show_default=True, help=PARTITION_HELP)
@click.option("--delta", is_flag=True, help="The delta CRL of that partition.")
@click.option("--number", type=click.IntRange(1), default=None,
              help="An archived CRL (default: the one being served).")
@click.option("--entries", "max_entries", type=click.IntRange(0), default=20, show_default=True,
              help="How many entries to print.")
@click.option("--pem", "fmt", flag_value="pem", help="Print the CRL as PEM.")
@click.option("--der", "fmt", flag_value="der", help="Write the DER to stdout.")
@pass_ctx
def show(c: Ctx, ca_ref: str, partition: str, delta: bool, number: int | None, max_entries: int,
         fmt: str | None) -> None:
    """Decode one published CRL (pyca/cryptography) and print its fields and first entries."""
    import base64
    import itertools

    from cryptography import x509

    from jpki_mock.crl.publisher import check_scope

    pub = _publisher(c)
    kind, generation = pub.status.parse_issuer_ref(ca_ref)
    issuer = pub.status.issuer(kind, generation)
    check_scope(partition)
    stream = pub.find(issuer.kind, issuer.generation, f"{partition}-delta" if delta else partition)
    path = pub.current_file(stream) if number is None else pub.archive_file(stream, number)
    if not path.exists():
        what = "has not been published yet" if number is None else f"has no archived CRL number {number}"
        raise errors.NotFound(f"{stream.label} {what}", field="number" if number is not None else "partition")
    data = path.read_bytes()
    if fmt == "der":
        sys.stdout.buffer.write(data)
        return
    if fmt == "pem":
        text = base64.encodebytes(data).decode().replace("\n", "")
        click.echo("-----BEGIN X509 CRL-----")
        for i in range(0, len(text), 64):
            click.echo(text[i:i + 64])
        click.echo("-----END X509 CRL-----")
        return
    parsed = x509.load_der_x509_crl(data)
    exts = {type(e.value).__name__: _extension_value(e.value) for e in parsed.extensions}
    entries: list[dict[str, object]] = []
    for r in itertools.islice(parsed, max_entries):
        item: dict[str, object] = {"serial": r.serial_number, "revoked_at": r.revocation_date_utc.isoformat()}
        for e in r.extensions:
            if isinstance(e.value, x509.CRLReason):
                item["reason"] = _reason_name(e.value.reason)
            elif e.oid.dotted_string == "2.5.29.23":
                from asn1crypto import core

                item["hold_instruction"] = core.ObjectIdentifier.load(e.value.value).dotted
            else:
                item[e.oid.dotted_string] = str(e.value)
        entries.append(item)
    next_update = parsed.next_update_utc  # RFC 5280 section 5.1.2.5: optional in the syntax, ours always have it
    echo_json({"stream": stream.label, "file": str(path), "size": len(data), "issuer": parsed.issuer.rfc4514_string(),
               "this_update": parsed.last_update_utc.isoformat(),
               "next_update": next_update.isoformat() if next_update is not None else None,
               "entries": len(parsed), "extensions": exts, "first_entries": entries})


def _publisher(c: Ctx) -> Publisher:
    """A publisher over the command's runtime (opened lazily by :class:`jpki_mock.commands.Ctx`)."""
    return Publisher(CrlDeps.of(c.ready()))


def _reason_name(flag: x509.ReasonFlags) -> str:
    """A pyca/cryptography ReasonFlags as the API and the CLI spell reasons (RFC 5280 names)."""
    for reason in Reason:
        if reason.x509_flag is flag:
            return reason.rfc_name
    return flag.value  # not a JPKI reason (docs/sources.md section 4): pyca's own spelling of it


def _general_name(name: x509.GeneralName) -> str:
    from cryptography import x509

    return name.value.rfc4514_string() if isinstance(name, x509.DirectoryName) else str(name.value)


def _extension_value(value: x509.ExtensionType) -> int | str | dict[str, object] | list[str] | None:
    """A CRL extension as readable JSON (cryptography's reprs show raw bytes)."""
    from cryptography import x509

    if isinstance(value, (x509.CRLNumber, x509.DeltaCRLIndicator)):
        return value.crl_number
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier.hex(":") if value.key_identifier else None
    if isinstance(value, x509.IssuingDistributionPoint):
        return {"names": [_general_name(n) for n in value.full_name or []],
                "only_user_certs": value.only_contains_user_certs, "only_ca_certs": value.only_contains_ca_certs}
    if isinstance(value, x509.FreshestCRL):
        return [_general_name(n) for dp in value for n in dp.full_name or []]
    return str(value)
