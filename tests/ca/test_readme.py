"""The README's five-minute tour, run for real against a server (same runner as the tutorials:
from a stand-in repository root, on a free port, its files under work/tour/)."""

import pytest

from tests.kit.test_tutorials import blocks, check_blocks, run_session
from tests.support import ROOT, Server

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_readme_tour_runs(tmp_path):
    readme = ROOT / "README.md"
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
