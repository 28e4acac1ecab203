"""``jpki-mock loadtest``: sizing, corpus, plan and run (docs/loadtest.md)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from jpki_mock.commands import JpkiGroup, open_runtime
from jpki_mock.errors import InvalidInput, NotInitialised
from jpki_mock.loadtest import sizing
from jpki_mock.loadtest.profiles import CLASSES, PROFILES

TOKEN_ENV = "JPKI_MOCK_ADMIN_TOKEN"
RP_ENV = "JPKI_MOCK_RP_CREDENTIAL"


@click.group(cls=JpkiGroup)
def loadtest() -> None:
    """Load tests sized from J-LIS's FY2020 volumes (Locust)."""


@loadtest.command("sizing")
def sizing_cmd() -> None:
    """Print the FY2020 arithmetic the profiles use."""
    for label, value in sizing.summary():
        click.echo(f"{label:40s} {value}")


@loadtest.command("corpus")
@click.option("--certificates", type=click.IntRange(2, 10_000_000), default=1000, show_default=True,
              help="Seeded certificates to sample (plus never-issued and foreign-issuer requests).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--seed", "rng_seed", type=int, default=None, help="Random seed for a reproducible sample.")
@click.option("--population", type=click.IntRange(0, 10_000_000), default=0, show_default=True,
              help="National scale: records sampled from the whole population, each looked up once "
                   "(docs/loadtest.md \"National scale\").")
def corpus_cmd(certificates: int, out: Path, rng_seed: int | None, population: int) -> None:
    """Build the request corpus from this data directory's database (read-only)."""

    from jpki_mock.loadtest import corpus

    rt = open_runtime()
    try:
        if not rt.store.is_initialised():
            raise NotInitialised("no CA in this data directory: run `jpki-mock init` and `jpki-mock seed` first")
        data = corpus.build(rt, certificates, seed=rng_seed, population=population)
    finally:
        rt.close()
    corpus.write(data, out)
    for kind, counts in data["counts"].items():
        click.echo(f"{kind}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for kind, records in data["population"].items():
        click.echo(f"{kind} population sample: {len(records)} records")
    click.echo(f"wrote {out}")


def profile_options(f):
    """Options shared by ``plan`` and ``run``."""
    opts = [
        click.option("--profile", type=click.Choice(PROFILES), required=True,
                     help="fy2020: the real average and weekly curve, time-compressed; peak: the busiest hour x "
                          "--multiplier; stress: ramp to the knee; soak: a steady rate."),
        click.option("--duration", default="60s", show_default=True,
                     help="Run time: 30s, 5m, 1h30m (stress may stop earlier)."),
        click.option("--scale", type=float, default=1.0, show_default=True,
                     help="Multiply every rate (e.g. 100 for a future year)."),
        click.option("--users", type=click.IntRange(1, 100_000), default=500, show_default=True,
                     help="Most simulated OCSP users (concurrency of the load generator)."),
        click.option("--classes", default=",".join(CLASSES), show_default=True,
                     help="Which clients to simulate, comma-separated."),
        click.option("--day-seconds", type=float, default=240.0, show_default=True,
                     help="fy2020: real seconds per simulated day."),
        click.option("--start-hour", type=float, default=0.0, show_default=True,
                     help="fy2020: simulated week hour at the start (0 = Monday 00:00 JST)."),
        click.option("--multiplier", type=float, default=sizing.PEAK_DAY_MULTIPLIER, show_default=True,
                     help="peak: busiest-day factor applied to the busiest hour."),
        click.option("--rate", type=float, default=None, help="soak: OCSP req/s (default: the FY2020 average)."),
        click.option("--start-rate", type=float, default=None,
                     help="stress: first step's OCSP req/s (default: the busiest hour)."),
        click.option("--step-factor", type=float, default=1.5, show_default=True,
                     help="stress: rate multiplier per step."),
        click.option("--step-seconds", type=float, default=10.0, show_default=True, help="stress: seconds per step."),
        click.option("--p99-ms", type=float, default=200.0, show_default=True, help="stress: p99 limit."),
        click.option("--max-failure-ratio", type=float, default=0.01, show_default=True, help="stress: failure limit."),
        click.option("--get-share", type=float, default=sizing.OCSP_GET_SHARE, show_default=True),
        click.option("--nonce-share", type=float, default=sizing.OCSP_NONCE_SHARE, show_default=True),
        click.option("--sha256-share", type=float, default=sizing.OCSP_SHA256_SHARE, show_default=True),
        click.option("--verify-signatures", is_flag=True,
                     help="Also verify every OCSP response signature (costs CPU)."),
        click.option("--ocsp-path", default="/ocsp", show_default=True, help="OCSP path on the target."),
        click.option("--seed", "rng_seed", type=int, default=None, help="Random seed for the request sequence."),
        click.option("--repeat-share", type=float, default=0.05, show_default=True,
                     help="National scale: share of lookups repeating a recent one (a session re-check)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def plan_extra(kw: dict) -> dict:
    classes = tuple(c.strip() for c in kw.pop("classes").split(",") if c.strip())
    return {
        "classes": classes, "day_seconds": kw.pop("day_seconds"), "start_hour": kw.pop("start_hour"),
        "multiplier": kw.pop("multiplier"), "rate": kw.pop("rate"), "start_rate": kw.pop("start_rate"),
        "step_factor": kw.pop("step_factor"), "step_seconds": kw.pop("step_seconds"), "p99_ms": kw.pop("p99_ms"),
        "max_failure_ratio": kw.pop("max_failure_ratio"), "get_share": kw.pop("get_share"),
        "nonce_share": kw.pop("nonce_share"), "sha256_share": kw.pop("sha256_share"),
        "verify_signatures": kw.pop("verify_signatures"), "ocsp_path": kw.pop("ocsp_path"), "seed": kw.pop("rng_seed"),
        "repeat_share": kw.pop("repeat_share"),
    }


@loadtest.command("plan")
@profile_options
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for plan.json and the shape's target.csv / knee.json.")
@click.option("--workers", type=click.IntRange(0, 64), default=0, show_default=True)
@click.option("--token", default=None, help=f"Admin API token for the operator (or {TOKEN_ENV}).")
@click.option("--rp-credential", default=None, help=f"Relying-party credential (or {RP_ENV}).")
def plan_cmd(profile: str, duration: str, scale: float, users: int, corpus: Path, out: Path, workers: int,
             token: str | None, rp_credential: str | None, **kw) -> None:
    """Write plan.json for running Locust yourself (e.g. workers on other machines)."""
    from jpki_mock.loadtest.profiles import PlanSpec
    from jpki_mock.loadtest.runner import parse_duration

    extra = plan_extra(kw)
    token = token or os.environ.get(TOKEN_ENV)
    classes = list(extra.pop("classes"))
    if token is None and "operator" in classes:
        classes.remove("operator")
        click.echo("no admin token: the operator user is left out")
    spec = PlanSpec(profile=profile, duration=parse_duration(duration), corpus=str(corpus.resolve()),
                    out=str(out.resolve()), scale=scale, users=users, workers=workers, classes=tuple(classes),
                    token=token, rp_credential=rp_credential or os.environ.get(RP_ENV), **extra)
    path = spec.write(out / "plan.json")
    locustfile = Path(__file__).with_name("locustfile.py")
    click.echo(f"wrote {path}; run: JPKI_LOADTEST_PLAN={path} locust -f {locustfile} ...")


@loadtest.command("run")
@profile_options
@click.option("--target", default=None, help="Base URL of another target (default: start the local mock on 127.0.0.1).")
@click.option("--workers", type=click.IntRange(0, 64), default=0, show_default=True,
              help="Locust worker processes under one master (0: a single process).")
@click.option("--server-workers", type=click.IntRange(1, 64), default=None,
              help="Local target: worker processes of jpki-mock serve (default: its configuration).")
@click.option("--holders", type=click.IntRange(1, 50_000_000), default=1000, show_default=True,
              help="Local target: seed up to this many holders if the database has fewer.")
@click.option("--certificates", type=click.IntRange(2, 10_000_000), default=1000, show_default=True,
              help="Local target: certificates sampled into the corpus.")
@click.option("--population", type=click.IntRange(0, 10_000_000), default=0, show_default=True,
              help="Local target: records sampled from the whole population for first lookups (national scale).")
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A corpus file (required with --target; default for a local run: build one).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default: loadtest/reports/<profile>-<time>).")
@click.option("--token", default=None, help=f"Admin API token for the operator (or {TOKEN_ENV}; local: made for you).")
@click.option("--rp-credential", default=None, help=f"Relying-party credential (or {RP_ENV}; local: made if needed).")
def run_cmd(profile: str, duration: str, scale: float, users: int, target: str | None, workers: int,
            server_workers: int | None, holders: int, certificates: int, population: int, corpus: Path | None,
            out: Path | None,
            token: str | None, rp_credential: str | None, **kw) -> None:
    """Run one load profile headless and write reports; the last line sums it up."""
    from jpki_mock.loadtest import report
    from jpki_mock.loadtest.runner import Run, RunOptions, check_target, default_out, locust_installed, parse_duration

    if not locust_installed():
        # One line, no traceback: `make run` installs the runtime dependencies only.
        raise InvalidInput("Locust and matplotlib are not installed: `pip install -e '.[loadtest]'` "
                           "(or `make test`, which installs them) adds them", field="loadtest")
    seconds = parse_duration(duration)
    if target is not None:
        target = check_target(target)
        if corpus is None:
            raise InvalidInput("is required with --target: the corpus says what the target must answer",
                               field="--corpus", allowed="a file from `jpki-mock loadtest corpus`")
    extra = plan_extra(kw)
    out = out or default_out(profile)
    opts = RunOptions(profile=profile, duration=seconds, out=out, scale=scale, target=target, users=users,
                      workers=workers, server_workers=server_workers, holders=holders, certificates=certificates,
                      population=population,
                      corpus=corpus, token=token or os.environ.get(TOKEN_ENV),
                      rp_credential=rp_credential or os.environ.get(RP_ENV), plan_extra=extra, echo=click.echo)
    # Validate the profile parameters before starting anything.
    from jpki_mock.loadtest.profiles import PlanSpec

    PlanSpec(profile=profile, duration=seconds, corpus="-", out=str(out), scale=scale, users=users, workers=workers,
             **extra)
    summary = Run(opts).execute()
    click.echo(f"reports in {out}: report.html, locust_stats.csv, summary.txt, plot.png")
    for note in summary.notes:
        click.echo(f"note: {note}")
    if summary.knee is not None:
        click.echo(report.knee_line(summary.knee))
    click.echo(summary.line())
