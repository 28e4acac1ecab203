"""The tutorials' commands, run for real so the tutorials cannot rot.

Each tutorial in docs/tutorials/ (and the recipes of docs/time-travel.md) is run as one bash
session against a server started here, as a reader would: from a directory standing for the
repository root, with the server's data directory in ``JPKI_MOCK_DATA`` and its port in
``PORT`` (a free port, never the default 8080: the text must not name a port).  Fenced blocks
opened with ```` ```sh tutorial ```` are run in order; a block opened with
```` ```sh tutorial fails ```` must exit non-zero (a wrong PIN, a refused release, an expired
certificate).  An ``<!-- expect: TEXT -->`` comment after a block names text its output must
contain, ``<!-- expect-not: TEXT -->`` text it must not.  Other fenced blocks (outputs,
diagrams) are documentation only.

Each session must work in the directory it names under ``work/``: afterwards the stand-in
repository root holds ``work/`` and nothing else, the real repository root gained none of
the session's files, and every secret the session wrote (PKCS#12, private keys) is 0600.
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
TIME_TRAVEL = ROOT / "docs" / "time-travel.md"
DEFAULT_PORT = "127.0.0.1:8080"
_FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*\n"
                    r"(?P<after>(?:[ \t]*<!-- expect(?:-not)?: .*? -->[ \t]*\n)*)",
                    re.M | re.S)
_EXPECT = re.compile(r"<!-- expect: (.*?) -->")
_EXPECT_NOT = re.compile(r"<!-- expect-not: (.*?) -->")
#: what a secret looks like on disk: PKCS#12 by name, keys by their PEM label
_SECRET_SUFFIXES = (".p12", ".pfx", ".key")


@dataclass
class Block:
    code: str
    fails: bool
    expects: list[str] = field(default_factory=list)
    line: int = 0
    expects_not: list[str] = field(default_factory=list)


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        info = m.group("info").split()
        if info[:2] != ["sh", "tutorial"]:
            continue
        out.append(Block(m.group("body"), "fails" in info[2:], _EXPECT.findall(m.group("after")),
                         text.count("\n", 0, m.start()) + 1, _EXPECT_NOT.findall(m.group("after"))))
    return out


def script(path: Path) -> str:
    """One bash session, as a student's terminal: variables set in one block are there in the
    next.  An ERR trap records whether any command of a block failed (without ending the
    session, as ``set -e`` would); markers split the output per block."""
    parts = ["set -o pipefail", "failed=0", "trap 'failed=1' ERR"]
    for i, b in enumerate(blocks(path)):
        parts.append(f"echo '@@block {i}'")
        parts.append("{\n" + b.code + "\n} 2>&1")
        parts.append(f"echo \"@@status {i} $failed\"; failed=0")
    return "\n".join(parts) + "\n"


def tutorial_files() -> list[Path]:
    """Every tutorial, English and Japanese (``name.md`` and ``name.ja.md``; both are run): the
    numbered ones, then the topical ones (``verify-in-<language>.md``)."""
    return sorted(TUTORIALS.glob("[0-9]*.md")) + sorted(TUTORIALS.glob("verify-in-*.md"))


def english_tutorials() -> list[Path]:
    return [p for p in tutorial_files() if not p.name.endswith(".ja.md")]


def test_every_tutorial_has_runnable_blocks():
    files = english_tutorials()
    assert len(files) == 7
    for path in [*tutorial_files(), TIME_TRAVEL]:
        assert blocks(path), f"{path.name} has no ```sh tutorial blocks"
        for b in blocks(path):
            assert DEFAULT_PORT not in b.code, f"{path.name} line {b.line}: names port 8080; use $MOCK (PORT)"



@pytest.mark.parametrize("path", english_tutorials(), ids=lambda p: p.stem)
def test_japanese_twin_runs_the_same_commands_and_links_back(path):
    twin = path.with_name(path.stem + ".ja.md")
    assert twin.exists(), f"{path.name} has no Japanese version {twin.name}"
    english, japanese = blocks(path), blocks(twin)
    assert [(b.code, b.fails, b.expects, b.expects_not) for b in japanese] == \
        [(b.code, b.fails, b.expects, b.expects_not) for b in english], \
        f"{twin.name}'s commands differ from {path.name}'s: copy the blocks again after changing the English"
    assert f"({twin.name})" in path.read_text(encoding="utf-8"), f"{path.name} does not link to {twin.name}"
    assert f"({path.name})" in twin.read_text(encoding="utf-8"), f"{twin.name} does not link to {path.name}"

def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_session(path: Path, srv, tmp_path: Path) -> tuple[list[Block], dict[int, str], str]:
    """Run ``path``'s blocks as one session from a stand-in repository root, as a reader would;
    checks where its files went.  Returns the blocks, each block's output and the whole output."""
    assert srv.port != 8080
    repo = tmp_path / "repo"
    repo.mkdir()
    real_root_before = {p.name for p in ROOT.iterdir()}
    env = {**srv.env, "PORT": str(srv.port),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
    res = subprocess.run(["bash", "-c", script(path)], env=env, capture_output=True, text=True, timeout=300, cwd=repo)
    output = res.stdout + res.stderr
    chunks = re.split(r"^@@block (\d+)\n", res.stdout, flags=re.M)
    per_block = {int(chunks[i]): chunks[i + 1] for i in range(1, len(chunks) - 1, 2)}
    # Where the files went: only work/ in the (stand-in) repository root ...
    assert sorted(p.name for p in repo.iterdir()) == ["work"], f"{path.name} left files in the repository root"
    made = _files(repo / "work")
    assert made, f"{path.name} wrote nothing under work/"
    # ... none of them in the real one ...
    new_in_root = ({p.name for p in ROOT.iterdir()} - real_root_before) & {Path(f).name for f in made}
    assert not new_in_root, f"{path.name} wrote {sorted(new_in_root)} into {ROOT}"
    # ... and every secret readable by its owner only.
    for rel in sorted(made):
        f = repo / "work" / rel
        secret = f.suffix in _SECRET_SUFFIXES or (f.is_file() and b"PRIVATE KEY-----" in f.read_bytes()[:4096])
        if secret:
            assert f.stat().st_mode & 0o777 == 0o600, f"{path.name}: {rel} has mode {f.stat().st_mode & 0o777:o}"
    return blocks(path), per_block, output


def check_blocks(path: Path, found: list[Block], per_block: dict[int, str], output: str,
                 fix_expect=lambda text: text) -> None:
    for i, b in enumerate(found):
        assert i in per_block, f"{path.name} line {b.line}: block did not run\n{output[-3000:]}"
        status = re.search(rf"^@@status {i} (\d+)$", per_block[i], re.M)
        assert status, f"{path.name} line {b.line}: the session ended in this block\n{output[-3000:]}"
        code = int(status.group(1))
        if b.fails:
            assert code != 0, f"{path.name} line {b.line}: expected this block to fail\n{per_block[i]}"
        else:
            assert code == 0, f"{path.name} line {b.line}: a command failed\n{per_block[i]}"
        for want in b.expects:
            assert fix_expect(want) in per_block[i], f"{path.name} line {b.line}: output lacks {want!r}\n{per_block[i]}"
        for unwanted in b.expects_not:
            assert unwanted not in per_block[i], f"{path.name} line {b.line}: output has {unwanted!r}\n{per_block[i]}"


@pytest.fixture(scope="module")
def tutorial_server(tmp_path_factory):
    from tests.support import Server

    srv = Server(tmp_path_factory.mktemp("tutorials") / "var", workers=1)
    srv.token = srv.init()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def travel_server(tmp_path_factory):
    """A server of its own with time travel on: the recipes move its clock."""
    from tests.support import Server

    srv = Server(tmp_path_factory.mktemp("time-travel") / "var", {"JPKI_MOCK_TIME_TRAVEL": "1"}, workers=1)
    srv.token = srv.init()
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("path", tutorial_files(), ids=lambda p: p.stem)
def test_tutorial_runs(tutorial_server, tmp_path, path):
    if path.name.startswith("6-card-reader"):
        if os.geteuid() != 0:  # CI runs `make test` as root; elsewhere say why, never skip silently
            pytest.fail("the card reader tutorial's private pcscd needs root (mount and network namespaces): "
                        "run `make test` as root, as CI does")
        # whatever the tutorial leaves running if a block fails, stopped by PID
        request_cleanup = [("card", "remove"), ("card", "reader", "stop")]
    else:
        request_cleanup = []
    try:
        check_blocks(path, *run_session(path, tutorial_server, tmp_path))
    finally:
        for args in request_cleanup:
            tutorial_server.cli(*args, check=False)


def test_time_travel_recipes_run(travel_server, tmp_path):
    """docs/time-travel.md: openssl, told the mock's time, reports the expired certificate, the
    stale and the ahead-of-time responses, and tomorrow's CRL."""
    check_blocks(TIME_TRAVEL, *run_session(TIME_TRAVEL, travel_server, tmp_path))
