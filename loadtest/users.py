"""Locust user classes: the four kinds of client JPKI sees (imports Locust: load-generator side only).

Configuration comes from the plan file named by ``JPKI_LOADTEST_PLAN`` (written by
``jpki-mock loadtest run`` or ``jpki-mock loadtest plan``), read once per process by
:func:`context`; master and workers read the same file.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import locust.runners
from cryptography import x509
from locust import FastHttpUser, events, task

from jpki_mock.loadtest import checks, samples, sizing
from jpki_mock.loadtest.corpus import NONCE_LEN, Corpus, Expect, Lookups, get_suffix
from jpki_mock.loadtest.profiles import Plan, PlanSpec

PLAN_ENV = "JPKI_LOADTEST_PLAN"
# Workers report counters every second instead of every 3 s, so that the master's view (the
# stress knee, the history CSV) trails the truth by at most a second.
locust.runners.WORKER_REPORT_INTERVAL = 1.0


class Context:
    def __init__(self, spec: PlanSpec):
        self.spec = spec
        self.plan = Plan(spec)
        self.corpus = Corpus.load(spec.corpus)
        self.ca_certs = {label: x509.load_der_x509_certificate(i["der"]) for label, i in self.corpus.issuers.items()}
        self.signature = checks.SignatureCheck(self.ca_certs) if spec.verify_signatures else None
        self.t0 = time.monotonic()
        self.headers = {}
        if spec.rp_credential:
            self.headers["Authorization"] = f"Bearer {spec.rp_credential}"

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


@lru_cache(maxsize=1)
def context() -> Context:
    path = os.environ.get(PLAN_ENV)
    if not path:
        raise RuntimeError(f"set {PLAN_ENV} to a plan file (jpki-mock loadtest plan --help)")
    return Context(PlanSpec.load(path))


@events.test_start.add_listener
def _reset_clock(environment, **_kw):
    # Workers and master start the plan's clock when the test starts, within a message's latency.
    context().t0 = time.monotonic()


_ids = itertools.count()
_counts = {"requests": 0, "failures": 0}


@lru_cache(maxsize=1)
def _samples() -> samples.Writer:
    return samples.Writer(context().spec.out)


@events.request.add_listener
def _count(request_type="", name="", response_time=0.0, exception=None, **_kw):
    _counts["requests"] += 1
    if exception is not None:
        _counts["failures"] += 1
    ctx = context()
    _samples().add(ctx.elapsed(), request_type, name, float(response_time or 0.0), exception is None)


@events.quitting.add_listener
def _write_counts(environment, **_kw):
    """Each load-generating process leaves its own tally, so a distributed run shows that every
    worker sent requests (the master's CSV only has the sum)."""
    from locust.runners import MasterRunner, WorkerRunner

    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return
    _samples().close()
    role = f"worker-{runner.worker_index}" if isinstance(runner, WorkerRunner) else "local"
    out = Path(context().spec.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"requests-{role}-{os.getpid()}.json").write_text(json.dumps(_counts), encoding="utf-8")


class Paced:
    """Poisson pacing at the plan's rate for this user's class (see profiles.py)."""

    klass = ""
    # Set by setup_rng() when the user starts.
    _rng: random.Random
    _idle: bool
    _next: float | None

    def paced_wait(self) -> float:
        """Seconds until this user's next request.  Start times, not gaps, are drawn, so a
        request's own latency does not lower the rate (as long as it is shorter than the gap)."""
        ctx = context()
        interval = ctx.plan.mean_interval(self.klass, ctx.elapsed())
        now = time.monotonic()
        if interval is None:
            self._idle = True
            self._next = None
            return 1.0  # nothing to do at this hour; look again in a second
        self._idle = False
        if self._next is None or self._next < now - 1.0:
            self._next = now  # start, or a backlog of more than a second: do not burst to catch up
        self._next += self._rng.expovariate(1.0 / interval)
        return max(0.0, self._next - now)

    def setup_rng(self) -> None:
        seed = context().spec.seed
        self._rng = random.Random(None if seed is None else seed * 1_000_003 + next(_ids))
        self._idle = False
        self._next = None


class OcspVerifier(Paced, FastHttpUser):
    """A relying party checking a certificate over OCSP (RFC 6960 appendix A: GET or POST)."""

    abstract = True
    kind = "auth"

    def wait_time(self):
        return self.paced_wait()

    def on_start(self):
        self.setup_rng()
        ctx = context()
        # Each simulated relying party walks the population sample from its own random point: users
        # (in every Locust process) ask distinct records until one walks into another's stretch.
        self.lookups = Lookups(ctx.corpus, ctx.spec.repeat_share, start=self._rng.random())

    @task
    def lookup(self):
        if self._idle:
            return
        ctx = context()
        spec, rng = ctx.spec, self._rng
        item = self.lookups.next(self.kind, rng)
        alg = "sha256" if rng.random() < spec.sha256_share else "sha1"
        nonce = os.urandom(NONCE_LEN) if (ctx.corpus.policies.get("nonce_policy") == "require"
                                          or rng.random() < spec.nonce_share) else None
        data: bytes | None = None
        headers: dict[str, str] | None = None
        if nonce is None and rng.random() < spec.get_share:
            method, path = "GET", f"{spec.ocsp_path}/{item.get_path[alg]}"
        elif nonce is not None and rng.random() < spec.get_share:
            method, path = "GET", f"{spec.ocsp_path}/{get_suffix(item.request(alg, nonce))}"
        else:
            method, path = "POST", spec.ocsp_path
            data = item.request(alg, nonce)
            headers = {**ctx.headers, "Content-Type": "application/ocsp-request"}
        if method == "GET" and ctx.headers:
            headers = dict(ctx.headers)
        # FastHttpSession annotates data as str | dict, but documents and sends bytes as the body as is.
        with self.client.request(method, path, name=f"ocsp {self.kind} {method}", catch_response=True,
                                 data=data, headers=headers) as resp:  # type: ignore[arg-type]
            problem = checks.check_ocsp(
                item.expect, item.serial, alg, resp.status_code, resp.headers.get("Content-Type"), resp.content or b"",
                nonce=nonce, nonce_policy=ctx.corpus.policies.get("nonce_policy", "echo"),
                signature=ctx.signature, issuer=item.issuer,
            )
            if problem:
                resp.failure(f"{item.category} {self.kind}: {problem}")
            else:
                resp.success()


class AuthVerifier(OcspVerifier):
    """User-authentication certificates: logins and clinics' eligibility checks (170 of 171 lookups)."""

    kind = "auth"
    klass = "auth"
    weight = 1


class SignVerifier(OcspVerifier):
    """Signature certificates: signed applications (1 of 171 lookups)."""

    kind = "sign"
    klass = "sign"
    fixed_count = 1


class CrlDownloader(Paced, FastHttpUser):
    """The registered verifiers (112 private + 10 governmental) polling CRLs with conditional GET.

    One Locust user plays all of them in turn, each with its own ETag / Last-Modified per CRL,
    so a verifier downloads a CRL once per publication and gets 304 Not Modified otherwise."""

    klass = "crl"
    fixed_count = 1

    def wait_time(self):
        return self.paced_wait()

    def on_start(self):
        self.setup_rng()
        self.validators: dict[tuple[int, str], dict[str, str]] = {}

    @task
    def poll(self):
        if self._idle:
            return
        ctx, rng = context(), self._rng
        fetcher = rng.randrange(sizing.CRL_FETCHERS)
        full = [c for c in ctx.corpus.crls if c["partition"] == "full"]
        parts = [c for c in ctx.corpus.crls if c["partition"] != "full"]
        crl = rng.choice(parts if parts and rng.random() < sizing.CRL_PARTITION_SHARE else full)
        key = (fetcher, crl["path"])
        headers = dict(ctx.headers)
        headers.update(self.validators.get(key, {}))
        conditional = bool(self.validators.get(key))
        name = "crl full" if crl["partition"] == "full" else "crl partition"
        with self.client.get(crl["path"], name=name, headers=headers, catch_response=True) as resp:
            muni = None if crl["partition"] == "full" else crl["partition"]
            revoked = ctx.corpus.revoked_items(crl["issuer"], muni)
            good = ctx.corpus.good_items(crl["issuer"], muni)
            body = resp.content or b""
            problem, parsed = checks.check_crl(
                resp.status_code, body, ctx.ca_certs[crl["issuer"]], conditional=conditional,
                must_list=[], must_not_list=[it.serial for it in rng.sample(good, min(20, len(good)))],
            )
            if problem is None and parsed is not None and parsed.last_update_utc.timestamp() >= ctx.corpus.built_at:
                # Published after the corpus was built: everything revoked then must be listed.
                sample = rng.sample(revoked, min(20, len(revoked)))
                problem, _ = checks.check_crl(200, body, ctx.ca_certs[crl["issuer"]], conditional=False,
                                              must_list=[(it.serial, it.expect.reason) for it in sample])
            if problem:
                resp.failure(f"{crl['path']}: {problem}")
                return
            resp.success()
            if resp.status_code == 200:
                got = {}
                if resp.headers.get("ETag"):
                    got["If-None-Match"] = resp.headers["ETag"]
                if resp.headers.get("Last-Modified"):
                    got["If-Modified-Since"] = resp.headers["Last-Modified"]
                self.validators[key] = got


def _address(rng: random.Random) -> str:
    return f"東京都千代田区千代田{rng.randint(1, 9)}-{rng.randint(1, 30)}-{rng.randint(1, 20)}"


class Operator(Paced, FastHttpUser):
    """A municipal office through the admin API (bearer token): new cards, renewals, address
    changes, lost cards and expiry-notice lists at FY2020's annual rates.

    It only ever revokes certificates it issued itself, so the corpus stays true; after each
    revocation it asks the OCSP responder at once and requires ``revoked`` with the right
    reason (once a revoke call has returned, no process may answer good: docs/ocsp.md)."""

    klass = "operator"
    fixed_count = 1
    ACTIONS: ClassVar[list[str]] = list(sizing.OPERATOR_RPS)
    WEIGHTS: ClassVar[list[float]] = [sizing.OPERATOR_RPS[a] for a in ACTIONS]

    def wait_time(self):
        return self.paced_wait()

    def on_start(self):
        self.setup_rng()
        ctx = context()
        self.auth = {"Authorization": f"Bearer {ctx.spec.token}", "Content-Type": "application/json"}
        # Card keys are made on the card (docs/sources.md section 3): the office sends public keys.
        self.keys = ctx.corpus.operator_keys
        self.holders: list[dict] = []  # {"id", "certs": {kind: (issuer label, serial)}}

    def _json(self, resp, want: int, name: str):
        if resp.status_code != want:
            resp.failure(f"{name}: HTTP {resp.status_code}, expected {want}: {(resp.text or '')[:200]}")
            return None
        try:
            return resp.json()
        except ValueError:
            resp.failure(f"{name}: not JSON")
            return None

    @task
    def act(self):
        if self._idle:
            return
        action = self._rng.choices(self.ACTIONS, self.WEIGHTS)[0]
        if action != "new_card" and action != "expiry_page" and not self.holders:
            action = "new_card"
        getattr(self, f"do_{action}")()

    def do_new_card(self):
        rng = self._rng
        birth = f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        holder = {"name": "負荷\u3000試験", "date_of_birth": birth, "gender": rng.choice("123"),
                  "address": _address(rng)}
        with self.client.post("/admin/api/holders", json=holder, headers=self.auth, name="admin create holder",
                              catch_response=True) as resp:
            data = self._json(resp, 201, "create holder")
            if data is None:
                return
            if not isinstance(data.get("id"), (int, str)):
                resp.failure("create holder: no id in the answer")
                return
            resp.success()
        body = {"kinds": "both", "sign_public_key": self.keys["sign"], "auth_public_key": self.keys["auth"]}
        with self.client.post(f"/admin/api/holders/{data['id']}/certificates", json=body, headers=self.auth,
                              name="admin issue", catch_response=True) as resp:
            issued = self._json(resp, 201, "issue")
            if issued is None:
                return
            kinds = sorted(c.get("kind") for c in issued) if isinstance(issued, list) else None
            if kinds != ["auth", "sign"] or any(c.get("status") != "good" for c in issued):
                resp.failure(f"issue: expected a good sign and auth certificate, got {kinds}")
                return
            resp.success()
        self.holders.append({"id": data["id"], "certs": {c["kind"]: (c["issuer"], c["serial"]) for c in issued}})
        if len(self.holders) > 1000:
            self.holders.pop(0)

    def _event(self, holder: dict, event: dict, name: str, want_reason: str, kinds: set[str]) -> dict | None:
        with self.client.post(f"/admin/api/holders/{holder['id']}/events", json=event, headers=self.auth,
                              name=f"admin {name}", catch_response=True) as resp:
            data = self._json(resp, 200, name)
            if data is None:
                return None
            revoked = data.get("revoked") or []
            got = {(r.get("kind"), r.get("reason")) for r in revoked}
            want = {(k, want_reason) for k in kinds}
            if got != want:
                resp.failure(f"{name}: revoked {sorted(got)}, expected {sorted(want)}")
                return None
            resp.success()
        for r in revoked:
            label = holder["certs"][r["kind"]][0]
            self.check_revoked(label, int(r["serial"]), want_reason)
        return data

    def do_renewal(self):
        holder = self._rng.choice(self.holders)
        event = {"event": "renewal", "sign_public_key": self.keys["sign"], "auth_public_key": self.keys["auth"]}
        data = self._event(holder, event, "renewal", "superseded", set(holder["certs"]))
        if data is not None:
            holder["certs"] = {c["kind"]: (c["issuer"], c["serial"]) for c in data.get("issued", [])}

    def do_change(self):
        candidates = [h for h in self.holders if "sign" in h["certs"]]
        if not candidates:
            self.do_new_card()
            return
        holder = self._rng.choice(candidates)
        event = {"event": "change", "changes": {"address": _address(self._rng) + "-" + str(self._rng.randint(1, 99))}}
        if self._event(holder, event, "change", "affiliationChanged", {"sign"}) is not None:
            del holder["certs"]["sign"]  # the user-auth certificate stays valid

    def do_loss(self):
        holder = self.holders.pop(self._rng.randrange(len(self.holders)))
        self._event(holder, {"event": "loss"}, "loss", "certificateHold", set(holder["certs"]))

    def do_expiry_page(self):
        with self.client.get("/admin/api/certificates/expiring?days=90&limit=100", headers=self.auth,
                             name="admin expiring", catch_response=True) as resp:
            data = self._json(resp, 200, "expiring")
            if data is None:
                return
            if not isinstance(data.get("total"), int) or not isinstance(data.get("certificates"), list):
                resp.failure("expiring: no total / certificates in the answer")
                return
            resp.success()

    def check_revoked(self, label: str, serial: int, reason: str) -> None:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp

        ctx = context()
        issuer = ctx.corpus.issuers.get(label)
        if issuer is None:  # a generation created after the corpus: nothing to ask with
            return
        der = (ocsp.OCSPRequestBuilder()
               .add_certificate_by_hash(issuer["name_hash"]["sha1"], issuer["key_hash"]["sha1"], serial, hashes.SHA1())
               .build().public_bytes(serialization.Encoding.DER))
        # FastHttpSession annotates data as str | dict, but documents and sends bytes as the body as is.
        with self.client.post(ctx.spec.ocsp_path, data=der,  # type: ignore[arg-type]
                              name="revocation visible over ocsp", catch_response=True,
                              headers={**ctx.headers, "Content-Type": "application/ocsp-request"}) as resp:
            problem = checks.check_ocsp(Expect("successful", "revoked", reason), serial, "sha1", resp.status_code,
                                        resp.headers.get("Content-Type"), resp.content or b"",
                                        now=datetime.now(UTC))
            if problem:
                resp.failure(f"just revoked ({reason}): {problem}")
            else:
                resp.success()


USER_CLASSES = {"auth": AuthVerifier, "sign": SignVerifier, "crl": CrlDownloader, "operator": Operator}
