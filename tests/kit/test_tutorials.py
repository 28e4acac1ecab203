"""The tutorials' commands, run for real so the tutorials cannot rot.

Each tutorial in docs/tutorials/ is run as one bash session against a server started here
(its own data directory and port; ``http://127.0.0.1:8080`` in the text becomes the test
server's URL).  Fenced blocks opened with ```` ```sh tutorial ```` are run in order; a block
opened with ```` ```sh tutorial fails ```` must exit non-zero (a wrong PIN, a refused
release).  An ``<!-- expect: TEXT -->`` comment after a block names text its output must
contain.  Other fenced blocks (outputs, diagrams) are documentation only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.server, pytest.mark.slow]

TUTORIALS = ROOT / "docs" / "tutorials"
DOC_BASE = "http://127.0.0.1:8080"
_FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*\n"
                    r"(?P<after>(?:[ \t]*<!-- expect: .*? -->[ \t]*\n)*)",
                    re.M | re.S)
_EXPECT = re.compile(r"<!-- expect: (.*?) -->")


@dataclass
class Block:
    code: str
    fails: bool
    expects: list[str] = field(default_factory=list)
    line: int = 0


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        info = m.group("info").split()
        if info[:2] != ["sh", "tutorial"]:
            continue
        out.append(Block(m.group("body"), "fails" in info[2:], _EXPECT.findall(m.group("after")),
                         text.count("\n", 0, m.start()) + 1))
    return out


def script(path: Path, base: str) -> str:
    """One bash session, as a student's terminal: variables set in one block are there in the
    next.  An ERR trap records whether any command of a block failed (without ending the
    session, as ``set -e`` would); markers split the output per block."""
    parts = ["set -o pipefail", "failed=0", "trap 'failed=1' ERR"]
    for i, b in enumerate(blocks(path)):
        parts.append(f"echo '@@block {i}'")
        parts.append("{\n" + b.code.replace(DOC_BASE, base) + "\n} 2>&1")
        parts.append(f"echo \"@@status {i} $failed\"; failed=0")
    return "\n".join(parts) + "\n"


def tutorial_files() -> list[Path]:
    """The numbered tutorials, then the topical ones (``verify-in-<language>.md``)."""
    return sorted(TUTORIALS.glob("[0-9]*.md")) + sorted(TUTORIALS.glob("verify-in-*.md"))


def test_every_tutorial_has_runnable_blocks():
    files = tutorial_files()
    assert len(files) == 7
    for path in files:
        assert blocks(path), f"{path.name} has no ```sh tutorial blocks"


@pytest.fixture(scope="module")
def tutorial_server(tmp_path_factory):
    from tests.support import Server

    srv = Server(tmp_path_factory.mktemp("tutorials") / "var", workers=1)
    srv.token = srv.init()
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("path", tutorial_files(), ids=lambda p: p.stem)
def test_tutorial_runs(tutorial_server, tmp_path, path):
    srv = tutorial_server
    if path.stem == "6-card-reader":
        if os.geteuid() != 0:
            pytest.skip("the card reader tutorial's private pcscd needs root (mount and network namespaces)")
        # whatever the tutorial leaves running if a block fails, stopped by PID
        request_cleanup = [("card", "remove"), ("card", "reader", "stop")]
    else:
        request_cleanup = []
    try:
        _run_tutorial(srv, tmp_path, path)
    finally:
        for args in request_cleanup:
            srv.cli(*args, check=False)


def _run_tutorial(srv, tmp_path: Path, path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {**srv.env,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
    res = subprocess.run(["bash", "-c", script(path, srv.base)], env=env, capture_output=True, text=True,
                         timeout=300, cwd=work)
    output = res.stdout + res.stderr
    chunks = re.split(r"^@@block (\d+)\n", res.stdout, flags=re.M)
    per_block = {int(chunks[i]): chunks[i + 1] for i in range(1, len(chunks) - 1, 2)}
    for i, b in enumerate(blocks(path)):
        assert i in per_block, f"{path.name} line {b.line}: block did not run\n{output[-3000:]}"
        status = re.search(rf"^@@status {i} (\d+)$", per_block[i], re.M)
        assert status, f"{path.name} line {b.line}: the session ended in this block\n{output[-3000:]}"
        code = int(status.group(1))
        if b.fails:
            assert code != 0, f"{path.name} line {b.line}: expected this block to fail\n{per_block[i]}"
        else:
            assert code == 0, f"{path.name} line {b.line}: a command failed\n{per_block[i]}"
        for want in b.expects:
            assert want in per_block[i], f"{path.name} line {b.line}: output lacks {want!r}\n{per_block[i]}"
