"""CRL benchmark: a full CRL of 1,000,000 revoked entries, streaming writer vs cryptography's builder.

``make bench-crl`` (run it under ``flock /tmp/jpki-bench.lock``).  A temporary SQLite store is
seeded with revoked certificate rows straight through SQL (the rows need no certificate DER
for a CRL), then each round runs, each in a fresh subprocess so that peak RSS is honest:

* ``stream``:  ``crl.publisher.Publisher.publish`` - stream entries from the store, encode DER,
  sign once, check (parse every entry, verify the signature) and publish atomically;
* ``builder``: the same rows through ``x509.CertificateRevocationListBuilder`` (the same entry
  extensions), signed with the same CA key, then parsed and verified the same way.

Wall time covers build + sign + verify (not interpreter start-up), CPU time is printed beside
it (on a shared machine it shows the work when the wall time shows the contention); peak RSS is
the process's ``ru_maxrss``.  Medians of the rounds are printed; the last line is machine-readable:
``crl_entries=... stream_s=... stream_peak_mb=... builder_s=... builder_peak_mb=...``
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PASSPHRASE = "bench-crl"
#: a plausible JPKI mix: superseded (renewals) and affiliationChanged (moves) dominate
#: (an inference, [I]; the reasons JPKI uses: docs/sources.md section 4).
REASON_CYCLE = (4, 4, 4, 3, 3, 5, 1, 6, 0, 4)
YEAR = 365 * 86400


def _config(data_dir: Path):
    from jpki_mock.config import load_config

    return load_config({}, data_dir=data_dir, key_passphrase=PASSPHRASE)


def seed(data_dir: Path, entries: int, progress: bool = True) -> None:
    """Initialise a CA and insert ``entries`` revoked sign-certificate rows with plain SQL."""
    from tqdm import tqdm

    from jpki_mock.ca.serials import SERIAL_START
    from jpki_mock.runtime import Runtime

    rt = Runtime.open(_config(data_dir))
    rt.authority.init()
    ca_id = rt.authority.issuer("sign").id
    rt.close()
    reasons = " ".join(f"WHEN {i} THEN {r}" for i, r in enumerate(REASON_CYCLE))
    con = sqlite3.connect(data_dir / "jpki.db")
    con.execute("PRAGMA synchronous=OFF")
    chunk = 100_000
    with tqdm(total=entries, desc="seeding revoked rows", unit="row", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, entries, chunk):
            stop = min(entries, start + chunk)
            con.execute(
                "WITH RECURSIVE c(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM c WHERE i + 1 < ?) "
                "INSERT INTO certificates (ca_id, kind, serial, municipality, subject_cn, not_before, not_after, "
                "status, revoked_at, reason, status_seq, der, issued_at) "
                "SELECT ?, 'sign', ? + i, '13101', 'bench', '2026-01-01 00:00:00.000000', "
                "'2035-01-01 00:00:00.000000', 'revoked', "
                "datetime('2026-01-01', '+' || ((i * 7919) % ?) || ' seconds') || '.000000', "
                f"CASE i % {len(REASON_CYCLE)} {reasons} END, 0, x'', '2026-01-01 00:00:00.000000' FROM c",
                (start, stop, ca_id, SERIAL_START, YEAR),
            )
            con.commit()
            bar.update(stop - start)
    con.close()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_stream(data_dir: Path) -> dict:
    from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream
    from jpki_mock.runtime import Runtime

    rt = Runtime.open(_config(data_dir))
    stream = Stream(rt.authority.issuer("sign"), "full")
    publisher = Publisher(CrlDeps.of(rt))
    start, cpu = time.perf_counter(), time.process_time()
    rec = publisher.publish(stream)  # build, sign, check (parse + verify), publish
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    size = publisher.current_file(stream).stat().st_size
    rt.close()
    return {"seconds": seconds, "cpu": cpu, "peak_mb": _peak_mb(), "entries": rec.entries, "bytes": size}


def run_builder(data_dir: Path) -> dict:
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding

    from jpki_mock.runtime import Runtime
    from jpki_mock.vocab import Reason

    rt = Runtime.open(_config(data_dir))
    issuer = rt.authority.issuer("sign")
    signer = rt.keyring.ca_signer(issuer.id)
    # RFC 5280 section 5.3.1: no reasonCode for unspecified, as the streaming writer does.
    reasons = {int(r): x509.CRLReason(r.x509_flag) for r in Reason if r is not Reason.UNSPECIFIED}
    hold = x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.23"),
                                      bytes.fromhex("06072a8648ce380203"))  # id-holdinstruction-reject
    start, cpu = time.perf_counter(), time.process_time()
    now = rt.clock.now()
    revoked = []
    for serial, epoch, reason in rt.status.revoked_rows(issuer.id):
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(
            datetime.fromtimestamp(epoch, UTC))
        if reason in reasons:
            entry = entry.add_extension(reasons[reason], critical=False)
        if reason == Reason.CERTIFICATE_HOLD:
            entry = entry.add_extension(hold, critical=False)
        revoked.append(entry.build())
    count = len(revoked)
    # The constructor takes the whole list: add_revoked_certificate() copies it on every call (quadratic).
    builder = (x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
               .issuer_name(issuer.certificate.subject)
               .last_update(now).next_update(now + timedelta(days=1, hours=6))
               .add_extension(x509.AuthorityKeyIdentifier(issuer.ski, None, None), critical=False)
               .add_extension(x509.CRLNumber(1), critical=False))
    crl = signer.sign_crl(builder)
    der = crl.public_bytes(Encoding.DER)
    loaded = x509.load_der_x509_crl(der)
    ca_key = issuer.certificate.public_key()
    # JPKI CA keys are RSA (ca.keys): anything else cannot have signed this CRL.
    if not isinstance(ca_key, rsa.RSAPublicKey) or not loaded.is_signature_valid(ca_key) or len(loaded) != count:
        raise SystemExit("builder CRL does not verify")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    rt.close()
    return {"seconds": seconds, "cpu": cpu, "peak_mb": _peak_mb(), "entries": count, "bytes": len(der)}


def _worker(kind: str, data_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "jpki_mock.loadtest.bench.crl", "--worker", kind,
                          "--data", str(data_dir)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=["stream", "builder"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--skip-builder", action="store_true", help="Only the streaming writer.")
    args = parser.parse_args(argv)
    if args.entries < 1 or args.rounds < 1:
        parser.error("--entries and --rounds must be at least 1")
    if args.worker:
        result = run_stream(args.data) if args.worker == "stream" else run_builder(args.data)
        print(json.dumps(result))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="jpki-bench-crl-"))
    try:
        seed(tmp / "data", args.entries, progress=sys.stderr.isatty())
        results: dict[str, list[dict]] = {"stream": [], "builder": []}
        kinds = ["stream"] if args.skip_builder else ["stream", "builder"]
        for round_no in range(1, args.rounds + 1):
            for kind in kinds:  # interleaved, so both see the same background noise
                r = _worker(kind, tmp / "data")
                if r["entries"] != args.entries:
                    raise SystemExit(f"{kind} wrote {r['entries']} entries, expected {args.entries}")
                results[kind].append(r)
                print(f"round {round_no} {kind:7s} {r['seconds']:7.2f} s  (cpu {r['cpu']:6.2f} s)  "
                      f"peak {r['peak_mb']:7.1f} MB  "
                      f"{r['bytes'] / 1e6:6.1f} MB of DER", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(kind: str, field: str) -> float:
        return statistics.median(r[field] for r in results[kind]) if results[kind] else float("nan")

    s_s, s_mb = med("stream", "seconds"), med("stream", "peak_mb")
    b_s, b_mb = med("builder", "seconds"), med("builder", "peak_mb")
    if results["builder"]:
        print(f"median: stream {s_s:.2f} s (cpu {med('stream', 'cpu'):.2f} s) / {s_mb:.0f} MB, builder {b_s:.2f} s "
              f"(cpu {med('builder', 'cpu'):.2f} s) / {b_mb:.0f} MB: the stream is {b_s / s_s:.1f}x faster and "
              f"needs {b_mb / s_mb:.1f}x less memory")
    print(f"crl_entries={args.entries} stream_s={s_s:.2f} stream_peak_mb={s_mb:.1f} "
          f"builder_s={b_s:.2f} builder_peak_mb={b_mb:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
