"""A database made by an older jpki-mock is refused at start with the columns it lacks
(jpki_mock.db.Store.check_schema): ``create_all`` adds tables but never alters one, so the old
database would otherwise fail later, on some query, as a 500."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from jpki_mock.cli import main
from jpki_mock.errors import ConfigError
from tests.support.pki import open_runtime


def _age(db: str) -> None:
    """Make the certificates table as a release before lazy seeding had it: no seed_key column,
    der NOT NULL."""
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(certificates)") if r[1] != "seed_key"]
    ddl = con.execute("SELECT sql FROM sqlite_master WHERE name = 'certificates'").fetchone()[0]
    old = ddl.replace("\tseed_key SMALLINT, \n", "").replace("\tder BLOB, ", "\tder BLOB NOT NULL, ")
    assert old != ddl
    con.executescript(f"""
        PRAGMA foreign_keys=OFF;
        ALTER TABLE certificates RENAME TO certificates_new;
        {old};
        INSERT INTO certificates ({','.join(cols)}) SELECT {','.join(cols)} FROM certificates_new;
        DROP TABLE certificates_new;
    """)
    con.commit()
    con.close()


def test_an_older_database_is_refused_naming_what_it_lacks(tmp_path):
    rt = open_runtime(tmp_path)
    db = str(tmp_path / "jpki.db")
    rt.close()
    _age(db)
    with pytest.raises(ConfigError) as refused:
        open_runtime(tmp_path, init=False)
    message = str(refused.value)
    assert "certificates.seed_key (missing)" in message
    assert "certificates.der (NOT NULL, now nullable)" in message
    assert "jpki-mock reset" in message

    env = {"JPKI_MOCK_DATA": str(tmp_path), "JPKI_MOCK_KEY_PASSPHRASE": "a passphrase for tests"}
    out = CliRunner().invoke(main, ["cert", "list"], env=env)
    assert out.exit_code == 5 and "made by an older jpki-mock" in out.output and "Traceback" not in out.output


def test_a_current_database_opens(tmp_path):
    open_runtime(tmp_path).close()
    open_runtime(tmp_path, init=False).close()
