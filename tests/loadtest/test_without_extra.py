"""`make run` installs the runtime dependencies only: without the load-test extra, `jpki-mock
loadtest run` says so in one line (exit 2), and the commands that need no Locust still work."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

#: runs the CLI as if Locust and matplotlib were not installed (their import specs are not found)
WITHOUT_EXTRA = """
import importlib.machinery, sys
find = importlib.machinery.PathFinder.find_spec
def hidden(name, path=None, target=None):
    return None if name.split(".")[0] in ("locust", "matplotlib") else find(name, path, target)
importlib.machinery.PathFinder.find_spec = staticmethod(hidden)
from jpki_mock.cli import main
main(sys.argv[1:])
"""


def run(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "JPKI_MOCK_DATA": str(tmp_path / "var")}
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRA, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_loadtest_run_without_locust_is_one_line(tmp_path):
    proc = run(tmp_path, "loadtest", "run", "--profile", "soak", "--duration", "5s")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        ("error: loadtest: Locust and matplotlib are not installed: `pip install -e '.[loadtest]'` "
         "(or `make test`, which installs them) adds them")]
    assert proc.stdout == ""
    sizing = run(tmp_path, "loadtest", "sizing")
    assert sizing.returncode == 0 and sizing.stdout, sizing.stderr
