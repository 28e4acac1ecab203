"""The README's five-minute tour, run for real against a server (same runner as the tutorials:
from a stand-in repository root, on a free port, its files under work/tour/), in English and in
Japanese: README.ja.md must run the same commands."""

import pytest

from tests.kit.test_tutorials import blocks, check_blocks, run_session
from tests.support import ROOT, Server

pytestmark = [pytest.mark.server, pytest.mark.slow]

READMES = [ROOT / "README.md", ROOT / "README.ja.md"]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.name)
def test_readme_tour_runs(tmp_path, readme):
    assert len(blocks(readme)) >= 7
    srv = Server(tmp_path / "var", workers=1)
    srv.token = srv.init()
    srv.start()
    try:
        found, per_block, output = run_session(readme, srv, tmp_path)
    finally:
        srv.stop()
    check_blocks(readme, found, per_block, output,
                 fix_expect=lambda text: text.replace("127.0.0.1:8080", srv.base.removeprefix("http://")))
    assert (tmp_path / "repo" / "work" / "tour" / "cards" / "sign-1000001.p12").stat().st_mode & 0o777 == 0o600


def test_japanese_readme_runs_the_same_tour_and_links_back():
    english, japanese = (blocks(p) for p in READMES)
    assert [(b.code, b.fails, b.expects) for b in japanese] == [(b.code, b.fails, b.expects) for b in english], \
        "README.ja.md's tour differs from README.md's: copy the blocks again after changing the English"
    assert "(README.ja.md)" in READMES[0].read_text(encoding="utf-8")
    assert "(README.md)" in READMES[1].read_text(encoding="utf-8")
