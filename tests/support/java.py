"""tests/interop/java/JpkiVerify.java: compile it with javac and run it on a list of cases."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from tests.support.pki import ROOT

SOURCE = ROOT / "tests" / "interop" / "java" / "JpkiVerify.java"


def compile_verifier(dest: Path) -> Path:
    """The class directory of a fresh javac build."""
    done = subprocess.run(["javac", "-d", str(dest), str(SOURCE)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return dest


def run_verifier(classes: Path, listing: Path, cases: Iterable[Sequence[object]],
                 *java_options: str) -> tuple[dict[tuple[str, str], tuple[str, str]], str]:
    """Run every case ``(name, mode, certificate, anchors, date)`` in one JVM; returns
    ``{(name, mode): (outcome, reason)}`` and the printed table."""
    listing.write_text("".join(f"{n}\t{m}\t{c}\t{','.join(map(str, a))}\t{d}\n" for n, m, c, a, d in cases))
    done = subprocess.run(["java", *java_options, "-cp", str(classes), "JpkiVerify", str(listing)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {}
    for line in done.stdout.splitlines()[1:]:
        name, mode, outcome, reason = line.split(None, 3)
        rows[name, mode] = (outcome, reason)
    return rows, done.stdout
