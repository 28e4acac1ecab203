"""PostgreSQL's binary COPY format (ca.pgcopy): rows laid out by numpy, read back by PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import psycopg
import pytest

from jpki_mock.ca.pgcopy import Rows, Texts, stream
from jpki_mock.db import libpq_url
from tests.support.pki import fresh_pg_database

TABLE = ("CREATE TABLE t (a smallint, b integer, c bigint, d timestamp, e date, f varchar(40), "
         "g varchar(10), h varchar(4))")


def _load(*rows: Rows, table: str = TABLE) -> list[tuple]:
    url = libpq_url(fresh_pg_database())
    with psycopg.connect(url) as conn:
        conn.execute(table)
        with conn.cursor() as cur, cur.copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(stream(*rows))
        return conn.execute("SELECT * FROM t").fetchall()


def test_rows_of_every_kind_of_column_read_back_as_written():
    rng = np.random.default_rng(1)
    n = 500
    words = ["", "a", "東京都千代田区", "0000000000", "ｶﾀｶﾅ and ASCII", "𠮷野家"]
    texts, short = Texts(words), Texts(["sign", "auth"])
    a = rng.integers(-2**15, 2**15, n)
    b = rng.integers(-2**31, 2**31, n)
    c = rng.integers(-2**62, 2**62, n)
    us = rng.integers(0, 4_000_000_000 * 1_000_000, n)  # 1970 .. 2096
    days = rng.integers(-10_000, 40_000, n)
    null_a, null_d = rng.random(n) < 0.3, rng.random(n) < 0.5
    w1, w2, k = rng.integers(0, len(words), n), rng.integers(0, len(words), n), rng.integers(0, 2, n)
    rows = Rows(n, 8)
    rows.ints(a, ">i2", null=null_a)
    rows.ints(b, ">i4")
    rows.ints(c, ">i8")
    rows.timestamps(us, null=null_d)
    rows.dates(days)
    rows.text(texts.at(w1), texts.at(w2))
    rows.text(short.at(k))
    rows.constant(b"kind")
    got = _load(rows)
    epoch = datetime(1970, 1, 1)
    expected = [(None if null_a[i] else int(a[i]), int(b[i]), int(c[i]),
                 None if null_d[i] else epoch + timedelta(microseconds=int(us[i])),
                 date(1970, 1, 1) + timedelta(days=int(days[i])), words[w1[i]] + words[w2[i]],
                 ["sign", "auth"][k[i]], "kind") for i in range(n)]
    assert got == expected


def test_several_row_sets_make_one_stream_and_an_empty_set_adds_nothing():
    def one(value: int, n: int) -> Rows:
        r = Rows(n, 8)
        for dtype in (">i2", ">i4", ">i8"):
            r.ints(value, dtype)
        r.timestamps(int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000)
        r.dates(np.full(n, 0))
        r.constant(b"x")
        r.constant(b"y")
        r.constant(b"z")
        return r

    got = _load(one(1, 2), one(2, 0), one(3, 1))
    assert [g[0] for g in got] == [1, 1, 3]
    assert got[0][3:] == (datetime(2026, 1, 1), date(1970, 1, 1), "x", "y", "z")


def test_rows_missing_a_column_are_refused_before_anything_is_sent():
    r = Rows(3, 2)
    r.ints(1, ">i4")
    with pytest.raises(ValueError, match="1 columns added to rows of 2"):
        r.data()


def test_an_integer_too_large_for_its_column_type_is_refused_not_wrapped():
    """numpy would cast 40,000 to the smallint -25,536; the row would go in wrong."""
    r = Rows(3, 1)
    with pytest.raises(ValueError, match=r"column 1: values 5 to 40000 do not fit a 16-bit integer"):
        r.ints(np.array([5, 40_000, 7]), ">i2")
    r.ints(np.array([5, 40_000, 7]), ">i2", null=np.array([False, True, False]))  # NULL: the value is not sent
    assert _load(r, table="CREATE TABLE t (a smallint)") == [(5,), (None,), (7,)]
