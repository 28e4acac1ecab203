"""The README's five-minute tour, run for real against a server (same runner as the tutorials)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kit.test_tutorials import blocks, script
from tests.support import ROOT, Server

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_readme_tour_runs(tmp_path):
    readme = ROOT / "README.md"
    assert len(blocks(readme)) >= 7
    srv = Server(tmp_path / "var", workers=1)
    srv.token = srv.init()
    srv.start()
    try:
        env = {**srv.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
        res = subprocess.run(["bash", "-c", script(readme, srv.base)], env=env, capture_output=True, text=True,
                             timeout=300, cwd=tmp_path)
    finally:
        srv.stop()
    chunks = re.split(r"^@@block (\d+)\n", res.stdout, flags=re.M)
    per_block = {int(chunks[i]): chunks[i + 1] for i in range(1, len(chunks) - 1, 2)}
    for i, b in enumerate(blocks(readme)):
        out = per_block.get(i, "")
        assert re.search(rf"^@@status {i} 0$", out, re.M), f"README line {b.line} failed:\n{out}\n{res.stderr[-2000:]}"
        for want in b.expects:
            assert want.replace("127.0.0.1:8080", srv.base.removeprefix("http://")) in out, \
                f"README line {b.line}: output lacks {want!r}\n{out}"
