#!/usr/bin/env python3
"""`make test`: start a throwaway PostgreSQL cluster, run pytest, stop the cluster.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
(jpki_mock.loadtest.bench.pg).  The cluster lives in a temporary directory, listens on
127.0.0.1 only, and is stopped (by pg_ctl, then by PID) whatever pytest does.  Without
PostgreSQL binaries the storage tests that need it fail loudly rather than skip: CI must
exercise both databases.

Before pytest it installs the Debian packages the interop tests drive (DEBIAN_PACKAGES), each
only when dpkg says it is missing, so a second run installs nothing.  CI runs as root; without
root a missing package is a one-line error naming the apt-get command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# The cluster's start and stop live with the benchmarks that need PostgreSQL too.
from jpki_mock.loadtest.bench.pg import start_cluster, stop_cluster

ROOT = Path(__file__).resolve().parent.parent

# The real clients and servers the interop tests drive, by Debian package name.  A package is
# here only when a test in tests/ needs it; each line says which.
DEBIAN_PACKAGES = {
    "openssl": "tests/interop: openssl ocsp / crl / verify as a relying party's tool",
    "wrk": "tests/loadtest: the HTTP load generator the OCSP benchmark harness drives",
    "chromium": "tests/public/console: the console in a real browser through Playwright",
    "fonts-noto-cjk": "tests/public/console: Japanese text in the console's screenshots",
    "pcscd": "tests/kit/card_reader: the PC/SC daemon a card reader client talks to",
    "vsmartcard-vpcd": "tests/kit/card_reader: pcscd's virtual reader driver, our card on its socket",
    "opensc": "tests/kit/card_reader: opensc-tool, pkcs11-tool and opensc-pkcs11.so's JPKI driver",
    "libpcsclite-dev": "pyscard (a test dependency) builds against pcsc-lite's headers",
    "iproute2": "kit/pcsc.py: `ip link set lo up` in the private pcscd's network namespace",
    "swig": "pyscard builds its C wrapper with swig",
    "xmlsec1": "tests/kit: an independent verifier of the kit's XML signatures",
    "haproxy": "tests/ocsp/fleet: the load balancer in front of several responders",
    "default-jdk-headless": "tests/interop: Java's PKIX validator and SunPKCS11 (javac + java)",
    "gnutls-bin": "tests/interop/test_clients: GnuTLS's certtool and ocsptool as relying parties",
    "libnss3-tools": "tests/interop/test_clients: NSS's crlutil and vfychain as relying parties",
}


def missing_debian_packages(names: list[str]) -> list[str]:
    """Packages dpkg does not list as installed (no dpkg at all: every one is missing)."""
    if shutil.which("dpkg-query") is None:
        return list(names)
    done = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *names],
                          capture_output=True, text=True, check=False)
    installed = {line.split()[0] for line in done.stdout.splitlines() if line.split()[1:2] == ["ii"]}
    return [name for name in names if name not in installed]


def ensure_debian_packages() -> None:
    """Install what is missing of DEBIAN_PACKAGES; idempotent (dpkg is asked first)."""
    missing = missing_debian_packages(list(DEBIAN_PACKAGES))
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"make test needs Debian packages that are missing: {' '.join(missing)}\n"
                         f"install them with: sudo apt-get install -y {' '.join(missing)}")
    print(f"installing Debian packages: {' '.join(missing)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Wait for another apt (an unattended upgrade, a parallel run) instead of failing on its lock.
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q"], env=env, check=False)
        if subprocess.run(cmd, env=env, check=False).returncode != 0:
            raise SystemExit(f"apt-get could not install: {' '.join(missing)}")


def main() -> int:
    args = sys.argv[1:]
    ensure_debian_packages()
    env = dict(os.environ)
    data = tmp = None
    if "JPKI_MOCK_TEST_PG_URL" not in env:
        url, data, tmp = start_cluster()
        env["JPKI_MOCK_TEST_PG_URL"] = url
        print(f"throwaway PostgreSQL at {url}", flush=True)
    try:
        cmd = [sys.executable, "-m", "pytest", *args]
        code = subprocess.call(cmd, cwd=ROOT, env=env)
    finally:
        if data is not None:
            stop_cluster(data, tmp)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
