"""``jpki-mock loadtest run``: prepare, start, run Locust headless, stop everything, report.

Against the local mock (no ``--target``): initialise and seed the data directory if needed
(``jpki-mock init`` / ``jpki-mock seed``), build the corpus from its database, start
``jpki-mock serve`` on 127.0.0.1 on a free port, and stop it by its PID afterwards.  Against
``--target`` nothing is started: the corpus must describe the target's certificates.

Every process this module starts runs in its own session and is stopped by process group;
the whole run is bounded by ``--duration`` plus a fixed margin (:data:`HARD_MARGIN`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from jpki_mock.commands import open_runtime
from jpki_mock.errors import InvalidInput
from jpki_mock.loadtest import report, samples
from jpki_mock.loadtest.procs import Process, free_port, jpki_command, run_jpki, tree_cpu_seconds
from jpki_mock.loadtest.profiles import Plan, PlanSpec

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
#: seconds allowed beyond --duration for Locust to start, stop and write its reports.
HARD_MARGIN = 90.0
SERVER_START_TIMEOUT = 60.0
#: seconds between two progress lines while Locust runs.
PROGRESS_SECONDS = 5.0


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h30m`` -> seconds."""
    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", value)
        if not value or parts is None:
            raise InvalidInput(f"{text!r} is not a duration", field="--duration", allowed="e.g. 30s, 5m, 1h30m, 90")
        h, m, s = parts.groups()
        seconds = int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    if seconds <= 0:
        raise InvalidInput(f"{text!r} must be longer than 0", field="--duration")
    return seconds


def check_target(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url!r} is not an http(s) URL", field="--target", allowed="http://host:port[/prefix]")
    return url.rstrip("/")


def _cli(env: dict[str, str], *args: str) -> str:
    return run_jpki(env, *args).stdout


@dataclass
class RunOptions:
    profile: str
    duration: float
    out: Path
    scale: float = 1.0
    target: str | None = None
    users: int = 500
    workers: int = 0
    server_workers: int | None = None
    holders: int = 1000
    certificates: int = 1000
    #: records sampled from the whole population for national-scale lookups (corpus.Lookups)
    population: int = 0
    corpus: Path | None = None
    token: str | None = None
    rp_credential: str | None = None
    plan_extra: dict = field(default_factory=dict)
    echo: Callable[[str], None] = print


class Run:
    def __init__(self, opts: RunOptions):
        self.opts = opts
        self.out = opts.out
        self.procs: list[Process] = []
        self.server: Process | None = None
        self.notes: list[str] = []

    # ------------------------------------------------------------------ local target
    def _local_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["JPKI_MOCK_HOST"] = "127.0.0.1"  # loopback only: a local run never listens elsewhere
        return env

    def prepare_local(self) -> tuple[str, Path, str | None, str | None]:
        from jpki_mock.config import load_config
        from jpki_mock.loadtest import corpus as corpus_mod

        opts, env = self.opts, self._local_env()
        config = load_config()
        opts.echo(f"data directory {config.data_dir}")
        rt = open_runtime(config)
        try:
            initialised = rt.store.is_initialised()
        finally:
            rt.close()
        if not initialised:
            _cli(env, "init", "--if-needed")
            config = load_config()  # init may have written the key passphrase
        rt = open_runtime(config)
        try:
            holders_needed = max(0, opts.holders - _holder_count(rt))
            if holders_needed:
                opts.echo(f"seeding {holders_needed} holders (jpki-mock seed)")
                _cli(env, "seed", "--holders", str(holders_needed), "--seed", "20201", "--no-progress")
            token = opts.token or rt.registry.create_token("loadtest")
            rp = opts.rp_credential
            if rp is None and (config.ocsp.access_control or config.crl.access_control):
                name = "loadtest-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
                rp = rt.registry.add_relying_party(name, "both")[1]
                opts.echo(f"registered relying party {name} (access control is on)")
        finally:
            rt.close()
        if opts.corpus is not None:
            corpus_path = opts.corpus
        else:
            rt = open_runtime(config)
            try:
                data = corpus_mod.build(rt, opts.certificates, seed=20201, progress=False,
                                        population=opts.population)
            finally:
                rt.close()
            corpus_path = corpus_mod.write(data, self.out / "corpus.json")
            opts.echo(f"corpus: {sum(sum(c.values()) for c in data['counts'].values())} requests -> {corpus_path}")
        if holders_needed:
            self._publish_crls(env)
        port = free_port()
        env["JPKI_MOCK_PORT"] = str(port)
        base = f"http://127.0.0.1:{port}"
        args = jpki_command("serve")
        if opts.server_workers:
            args += ["--workers", str(opts.server_workers)]
        self.server = Process(args, self.out / "server.log", env)
        self._wait_ready(base)
        opts.echo(f"server {base} (pid {self.server.pid})")
        return base, corpus_path, token, rp

    def _publish_crls(self, env: dict[str, str]) -> None:
        """Publish CRLs now, so they list what was just seeded (the schedule is daily; the
        server also publishes at start-up whatever is due)."""
        done = subprocess.run(jpki_command("crl", "publish"), env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        if done.returncode != 0:
            self.notes.append(f"`jpki-mock crl publish` failed: {done.stderr.strip()[:200]}")

    def _wait_ready(self, base: str) -> None:
        assert self.server is not None
        until = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < until:
            if self.server.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.server.log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {SERVER_START_TIMEOUT:.0f} s; see {self.server.log}")

    # ------------------------------------------------------------------ warm-up
    def warm_up(self, base: str, corpus_path: Path, rp: str | None, rounds: int = 4) -> None:
        """A few requests per issuer before measuring: the first OCSP request a server process
        sees may create its delegated responder certificate (an RSA key generation), which is
        start-up cost, not steady-state latency."""
        import json

        from jpki_mock.loadtest.corpus import Corpus, Item

        data = Corpus(json.loads(Path(corpus_path).read_text(encoding="utf-8")))
        headers = {"Content-Type": "application/ocsp-request"}
        if rp:
            headers["Authorization"] = f"Bearer {rp}"
        ocsp_path = self.opts.plan_extra.get("ocsp_path", "/ocsp")
        firsts: dict[str | None, Item] = {}  # one good item per issuer label
        for item in data.items:
            if item.category == "good":
                firsts.setdefault(item.issuer, item)
        started = time.monotonic()
        for _ in range(rounds):
            for item in firsts.values():
                req = urllib.request.Request(base + ocsp_path, data=item.der["sha1"], headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        resp.read()
                except (urllib.error.URLError, OSError) as exc:
                    self.notes.append(f"warm-up request failed: {exc}")
                    return
        self.opts.echo(f"warm-up: {rounds * len(firsts)} OCSP requests in {time.monotonic() - started:.1f} s")

    # ------------------------------------------------------------------ Locust
    def start_locust(self, base: str, plan_path: Path) -> Process:
        opts = self.opts
        env = dict(os.environ)
        env["JPKI_LOADTEST_PLAN"] = str(plan_path.resolve())
        common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", base, "--loglevel", "WARNING"]
        master_args = [
            *common,
            "--headless", "--only-summary", "--csv", str(self.out / "locust"), "--csv-full-history",
            "--html", str(self.out / "report.html"), "--stop-timeout", "5", "--exit-code-on-error", "0",
        ]
        if opts.workers:
            port = free_port()
            master_args += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                            "--expect-workers", str(opts.workers), "--expect-workers-max-wait", "60"]
            # INFO on the master logs each worker joining and the spawn jobs sent to them.
            master_args[master_args.index("WARNING")] = "INFO"
            master = Process(master_args, self.out / "locust-master.log", env)
            self.procs.append(master)
            for i in range(opts.workers):
                worker = Process([*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                                 self.out / f"locust-worker-{i + 1}.log", env)
                self.procs.append(worker)
            opts.echo(f"locust master (pid {master.pid}) + {opts.workers} workers "
                      f"(pids {', '.join(str(p.pid) for p in self.procs[1:])})")
            return master
        master = Process(master_args, self.out / "locust.log", env)
        self.procs.append(master)
        opts.echo(f"locust (pid {master.pid})")
        return master

    # ------------------------------------------------------------------ the run
    def execute(self) -> report.Summary:
        opts = self.opts
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            if opts.target is None:
                base, corpus_path, token, rp = self.prepare_local()
            else:
                base = check_target(opts.target)
                assert opts.corpus is not None, "the CLI requires --corpus with --target"
                corpus_path, token, rp = opts.corpus, opts.token, opts.rp_credential
            classes = list(opts.plan_extra.pop("classes", None) or ("auth", "sign", "crl", "operator"))
            if token is None and "operator" in classes:
                classes.remove("operator")
                self.notes.append("no admin token (--token / JPKI_MOCK_ADMIN_TOKEN): the operator user is left out")
            spec = PlanSpec(profile=opts.profile, duration=opts.duration, corpus=str(Path(corpus_path).resolve()),
                            out=str(self.out.resolve()), scale=opts.scale, users=opts.users, workers=opts.workers,
                            token=token, rp_credential=rp, classes=tuple(classes), **opts.plan_extra)
            plan_path = spec.write(self.out / "plan.json")
            self.warm_up(base, Path(corpus_path), rp)
            server0, children0 = self._server_cpu(), _children_cpu()
            started = time.monotonic()
            master = self.start_locust(base, plan_path)
            # Bounded from Locust's start, whatever seeding took before it.
            code = self._wait_with_progress(master, spec, started)
            server_cpu = self._server_cpu() - server0
            for proc in reversed(self.procs):  # reaped, so their CPU time shows in RUSAGE_CHILDREN
                proc.stop()
            self._cpu_note(_children_cpu() - children0, server_cpu if self.server else None,
                           time.monotonic() - started)
            if code is None:
                self.notes.append(f"hard timeout: Locust still running {opts.duration + HARD_MARGIN:.0f} s "
                                  "after start; stopped")
        finally:
            self.stop_all()
        summary = report.read_stats(self.out, opts.profile)
        summary.notes += self.notes
        report.write_summary(summary, self.out)
        try:
            report.plot(self.out, f"jpki-mock loadtest: {opts.profile} (scale {opts.scale:g})", summary)
        except Exception as exc:  # the figures matter more than the picture
            summary.notes.append(f"plot failed: {exc}")
        return summary

    def _wait_with_progress(self, master: Process, spec: PlanSpec, started: float) -> int | None:
        """Wait for Locust (at most --duration + HARD_MARGIN), printing a progress line every
        :data:`PROGRESS_SECONDS`."""
        progress = Progress(self.out, spec)
        deadline = started + self.opts.duration + HARD_MARGIN
        while True:
            code = master.wait(min(PROGRESS_SECONDS, deadline - time.monotonic()))
            if code is not None or time.monotonic() >= deadline:
                return code
            self.opts.echo(progress.line(time.monotonic() - started))

    def _server_cpu(self) -> float:
        return tree_cpu_seconds(self.server.pid) if self.server is not None else 0.0

    def _cpu_note(self, generator: float, server: float | None, seconds: float) -> None:
        """How many cores each side used: on one machine, says which one ran out first."""
        text = f"CPU cores used during the run ({os.cpu_count()} here): load generator {generator / seconds:.2f}"
        if server is not None:
            text += f", server {server / seconds:.2f}"
        self.notes.append(text)

    def stop_all(self) -> None:
        # Workers first (they reconnect otherwise), then the master, then the server.
        for proc in reversed(self.procs):
            proc.stop()
        if self.server is not None:
            self.server.stop()


class Progress:
    """One line about the last few seconds of a run, read from the samples Locust's processes
    write (loadtest/samples.py): the same requests the summary and the plot count."""

    def __init__(self, out: Path, spec: PlanSpec):
        self.tail = samples.Tail(out)
        self.spec = spec
        self.plan = Plan(spec)
        self.requests = self.failures = 0
        self.run_time = 0.0
        self._last = time.monotonic()

    def line(self, elapsed: float) -> str:
        new = self.tail.new()
        now = time.monotonic()
        seconds = max(now - self._last, 1e-6)
        self._last = now
        self.requests += len(new)
        self.failures += sum(1 for s in new if not s.ok)
        ocsp = sum(1 for s in new if s.ocsp)
        # The plan's clock (the samples' run time) drives the target; before the first sample,
        # the time since Locust started.
        self.run_time = max([self.run_time, *(s.t for s in new)]) if new else max(self.run_time, 0.0)
        t = self.run_time or elapsed
        text = (f"progress {elapsed:5.0f} s: OCSP {ocsp / seconds:8.1f} req/s (target {self.plan.ocsp_rate(t):.1f}), "
                f"all {len(new) / seconds:8.1f} req/s, failures {self.failures} of {self.requests}")
        if self.spec.profile == "fy2020":
            text += f", simulated {report.sim_label(self.spec.start_hour + t * 24.0 / self.spec.day_seconds)} JST"
        elif self.spec.profile == "stress":
            text += f", step {self.plan.step(t) + 1}"
        return text


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _holder_count(rt) -> int:
    from sqlalchemy import func, select

    from jpki_mock.ca.models import Holder

    with rt.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Holder)).scalar() or 0)


def default_out(profile: str) -> Path:
    return Path("loadtest") / "reports" / f"{profile}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"


def locust_installed() -> bool:
    """Whether the load-test extra is installed: Locust drives the run, matplotlib draws the plot."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("locust", "matplotlib"))
