"""What the responder's own Python costs per answer, measured in one process.

    python -m jpki_mock.loadtest.bench.ocsp_python [--holders 300] [--requests 20000] [--repeats 5]

``make bench-ocsp`` measures the responder under granian against openssl; this script isolates
the responder's own Python, which that benchmark cannot separate from the server, the kernel,
the load generator and the signature. It seeds a throwaway CA with access control on,
registers a relying party, and calls the WSGI app directly, the way a server worker does:

* ``cached_python``: GETs for up to 200 certificates in turn, answered from pre-signed
  responses (the hot path), each with an environ as granian builds one and a ``PATH_INFO``
  string of its own (a server's is new per request, so its hash is computed every time);
* ``ceiling_app``: the same environs through the benchmark's ceiling (``loadtest/ceiling.py``,
  fixed bytes), for what any WSGI app costs here;
* ``cached_logged`` and ``cached_logged_json``: the cached GETs again with the access log on
  (jpki_mock.accesslog, text and JSON lines), written to a file in the temporary directory, as
  granian's WSGI interface serves them;
* ``nonced_python``: nonced POSTs for the same certificates, with the signature replaced by
  256 constant octets, so only the rest of the live path (decode, access check, status,
  encoding, count) is timed;
* ``nonced_total`` and ``sign``: with the real RSA-2048 signature, and that signature alone.

Prints one line, microseconds per request (best of the repeats): ``cached_python_us=<x>
ceiling_app_us=<x> nonced_python_us=<x> nonced_total_us=<x> sign_us=<x> cached_logged_us=<x>
cached_logged_json_us=<x>``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from unittest import mock

from jpki_mock.loadtest.bench.ocsp import BenchError, jpki


def _setup(data: str, holders: int) -> str:
    """A seeded CA with access control on; returns a relying party's credential."""
    os.environ.update(JPKI_MOCK_DATA=data, JPKI_MOCK_KEY_PASSPHRASE="bench-passphrase",
                      JPKI_MOCK_OCSP_ACCESS_CONTROL="true")
    env = dict(os.environ)
    jpki(env, "init")
    jpki(env, "seed", "--holders", str(holders), "--seed", "1")
    return jpki(env, "rp", "add", "bench", "--kinds", "both").strip().splitlines()[-1]


#: what granian puts in every WSGI environ besides the request's own items
GRANIAN_ENVIRON = {
    "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": False,
    "wsgi.multiprocess": True, "wsgi.run_once": False, "SERVER_SOFTWARE": "granian", "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8081", "REMOTE_ADDR": "127.0.0.1", "SCRIPT_NAME": "", "QUERY_STRING": "",
    "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8081", "HTTP_CONNECTION": "keep-alive",
}


def _per_request(app, environs: list[dict]) -> float:
    """Microseconds per request over one call for each of ``environs``: made before the clock
    starts, each a dict of its own as a server makes one per request (:func:`_gets`, :func:`_posts`)."""
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)

    start = time.perf_counter()
    for env in environs:
        app(env, start_response)
    elapsed = time.perf_counter() - start
    if set(status) != {"200 OK"}:
        raise SystemExit(f"the app answered {sorted(set(status))}, not only 200 OK")
    return elapsed / len(environs) * 1e6


def _gets(base: dict, paths: list[str], n: int) -> list[dict]:
    """``n`` GETs cycling through ``paths``, each ``PATH_INFO`` a new string (its hash is
    computed again, as for a server's)."""
    return [dict(base, PATH_INFO=paths[i % len(paths)].encode().decode()) for i in range(n)]


def _posts(base: dict, bodies: list[bytes], n: int) -> list[dict]:
    """``n`` POSTs cycling through ``bodies``, each with an input stream of its own."""
    return [dict(base, CONTENT_LENGTH=str(len(body)), **{"wsgi.input": io.BytesIO(body)})
            for body in (bodies[i % len(bodies)] for i in range(n))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jpki_mock.loadtest.bench.ocsp_python",
                                 description=__doc__.split("\n\n")[0])
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

        from jpki_mock.accesslog import AccessLog, Writer
        from jpki_mock.ca.models import Certificate
        from jpki_mock.ca.signer import ResponderSigner
        from jpki_mock.config import load_config
        from jpki_mock.loadtest.bench import ceiling
        from jpki_mock.loadtest.ocsp_requests import get_path, request_der
        from jpki_mock.ocsp.http import OcspApp
        from jpki_mock.runtime import Runtime

        rt = Runtime.open(load_config())
        try:
            issuer = rt.authority.issuer("auth")
            with rt.store.session() as s:
                serials = s.scalars(select(Certificate.serial).where(Certificate.ca_id == issuer.id).limit(200)).all()
            bodies = [request_der(issuer.name_hash["sha1"], issuer.key_hash["sha1"], serial, os.urandom(16))
                      for serial in serials]
            post_base = dict(GRANIAN_ENVIRON, REQUEST_METHOD="POST", PATH_INFO="/",
                             CONTENT_TYPE="application/ocsp-request", HTTP_AUTHORIZATION=f"Bearer {credential}")
            # What make_app serves without time travel: the responder's hot-path WSGI function.
            responder = OcspApp(rt.config, rt.clock, rt.store, rt.status, rt.keyring, rt.epoch)
            app = responder.wsgi
            get_base = dict(GRANIAN_ENVIRON, REQUEST_METHOD="GET", HTTP_AUTHORIZATION=f"Bearer {credential}",
                            **{"wsgi.input": io.BytesIO(b"")})
            paths = [get_path("", request_der(issuer.name_hash["sha1"], issuer.key_hash["sha1"], serial))
                     for serial in serials]
            _per_request(app, _gets(get_base, paths, 2 * len(paths)))  # pre-signed, as in a warmed server
            cached = min(_per_request(app, _gets(get_base, paths, args.requests)) for _ in range(args.repeats))
            captured: dict[str, list[tuple[str, str]]] = {}

            def capture(status, headers, exc_info=None):
                captured["headers"] = headers
                return lambda _data: None

            body = b"".join(app(dict(get_base, PATH_INFO=paths[0]),
                                capture))
            bare = ceiling.make_app(body, ceiling.app_headers(captured["headers"]))
            ceiling_app = min(_per_request(bare, _gets(get_base, paths, args.requests)) for _ in range(args.repeats))
            logged = {}
            for fmt in ("text", "json"):
                with open(os.path.join(data, f"access-{fmt}.log"), "wb") as log_file:
                    wrapped = AccessLog(fmt, Writer(log_file.fileno())).wrap(app)
                    logged[fmt] = min(_per_request(wrapped, _gets(get_base, paths, args.requests))
                                      for _ in range(args.repeats))
            # statuses and shapes known, as in a running server
            _per_request(app, _posts(post_base, bodies, len(bodies)))
            total = min(_per_request(app, _posts(post_base, bodies, max(1, args.requests // 20)))
                        for _ in range(args.repeats))
            signer = rt.keyring.responder_signer(issuer.id)
            data_to_sign = b"x" * 400
            start = time.perf_counter()
            for _ in range(500):
                signer.sign(data_to_sign)
            sign = (time.perf_counter() - start) / 500 * 1e6
            # the rest of the path, alone: every signature replaced by fixed bytes
            # A plain function, not return_value=: calling a MagicMock costs microseconds itself.
            with mock.patch.object(ResponderSigner, "sign", lambda self, data: b"\x01" * 256):  # noqa: PT008
                python = min(_per_request(app, _posts(post_base, bodies, args.requests))
                             for _ in range(args.repeats))
            responder.counters.stop()  # counts stay in memory; flushed here, before the data directory goes
        finally:
            rt.close()
    print(f"cached_python_us={cached:.2f} ceiling_app_us={ceiling_app:.2f} nonced_python_us={python:.1f} "
          f"nonced_total_us={total:.1f} sign_us={sign:.1f} cached_logged_us={logged['text']:.2f} "
          f"cached_logged_json_us={logged['json']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
