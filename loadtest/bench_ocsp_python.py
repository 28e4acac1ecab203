"""What a nonced OCSP POST costs besides its RSA signature, measured in one process.

    python -m loadtest.bench_ocsp_python [--holders 300] [--requests 20000] [--repeats 5]

``make bench-ocsp`` measures the responder under granian against openssl; this script isolates
the responder's own Python on the live path (decode, access check, status, encoding, count),
which that benchmark cannot separate from the server and the signature. It seeds a throwaway
CA, registers a relying party, and calls the WSGI app directly, the way a server worker does,
with nonced POSTs for up to 200 certificates in turn:

* ``python``: the signature replaced by 256 constant octets, so only the rest is timed;
* ``total`` and ``sign``: with the real RSA-2048 signature, and that signature alone.

Prints one line: ``nonced_python_us=<x> nonced_total_us=<x> sign_us=<x>`` (best of the repeats).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time

from .bench_ocsp import BenchError, jpki


def _setup(data: str, holders: int) -> str:
    """A seeded CA with access control on; returns a relying party's credential."""
    os.environ.update(JPKI_MOCK_DATA=data, JPKI_MOCK_KEY_PASSPHRASE="bench-passphrase",
                      JPKI_MOCK_OCSP_ACCESS_CONTROL="true")
    env = dict(os.environ)
    jpki(env, "init")
    jpki(env, "seed", "--holders", str(holders), "--seed", "1")
    return jpki(env, "rp", "add", "bench", "--kinds", "both").strip().splitlines()[-1]


def _per_request(app, environs: list[dict], n: int) -> float:
    """Microseconds per request over ``n`` calls cycling through ``environs``."""
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)

    start = time.perf_counter()
    for i in range(n):
        env = environs[i % len(environs)]
        env["wsgi.input"].seek(0)
        app(env, start_response)
    elapsed = time.perf_counter() - start
    if set(status) != {"200 OK"}:
        raise SystemExit(f"the responder answered {sorted(set(status))}, not only 200 OK")
    return elapsed / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtest.bench_ocsp_python", description=__doc__.split("\n\n")[0])
    ap.add_argument("--holders", type=int, default=300, help="holders seeded into the throwaway CA")
    ap.add_argument("--requests", type=int, default=20000, help="requests per repeat without the signature")
    ap.add_argument("--repeats", type=int, default=5, help="repeats (the best is printed)")
    args = ap.parse_args(argv)
    if min(args.holders, args.requests, args.repeats) < 1:
        ap.error("--holders, --requests and --repeats must be at least 1")

    with tempfile.TemporaryDirectory(prefix="jpki-bench-python-") as data:
        try:
            credential = _setup(data, args.holders)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        from sqlalchemy import select

        from ca.config import load_config
        from ca.models import Certificate
        from ca.runtime import Runtime
        from ca.signer import ResponderSigner
        from ocsp.http import make_app

        from .ocsp_requests import request_der

        rt = Runtime.open(load_config())
        try:
            issuer = rt.authority.issuer("auth")
            with rt.store.session() as s:
                serials = s.scalars(select(Certificate.serial).where(Certificate.ca_id == issuer.id).limit(200)).all()
            environs = []
            for serial in serials:
                body = request_der(issuer.name_hash["sha1"], issuer.key_hash["sha1"], serial, os.urandom(16))
                environs.append({"REQUEST_METHOD": "POST", "PATH_INFO": "/", "CONTENT_TYPE": "application/ocsp-request",
                                 "CONTENT_LENGTH": str(len(body)), "HTTP_AUTHORIZATION": f"Bearer {credential}",
                                 "wsgi.input": io.BytesIO(body)})
            app = make_app(rt)
            _per_request(app, environs, len(environs))  # statuses and shapes known, as in a running server
            total = min(_per_request(app, environs, max(1, args.requests // 20)) for _ in range(args.repeats))
            signer = rt.keyring.responder_signer(issuer.id)
            data_to_sign = b"x" * 400
            start = time.perf_counter()
            for _ in range(500):
                signer.sign(data_to_sign)
            sign = (time.perf_counter() - start) / 500 * 1e6
            real_sign = ResponderSigner.sign
            ResponderSigner.sign = lambda self, tbs: b"\x01" * 256  # the rest of the path, alone
            try:
                python = min(_per_request(app, environs, args.requests) for _ in range(args.repeats))
            finally:
                ResponderSigner.sign = real_sign
            app.ocsp.counters.stop()  # its flush thread must not outlive the data directory
        finally:
            rt.close()
    print(f"nonced_python_us={python:.1f} nonced_total_us={total:.1f} sign_us={sign:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
