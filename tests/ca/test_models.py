"""The store's UTC datetime column type, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, column, select, table, text
from sqlalchemy.dialects import sqlite

from jpki_mock.ca.models import Holder


def _holder(hid: int, created: datetime) -> Holder:
    return Holder(id=hid, name="佐藤\u3000花子", date_of_birth="420000229", gender="2", address="大阪府",
                  name_flags="00000", address_flags="000", municipality="27100",
                  card_expiry=created.date() + timedelta(days=3650), state="active",
                  created_at=created, updated_at=created)


WHEN = [
    datetime(2026, 11, 26, 3, 4, 5, 123456, tzinfo=UTC),
    datetime(2026, 11, 26, 12, 4, 5, tzinfo=timezone(timedelta(hours=9))),  # JST: stored as 03:04:05 UTC
    datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1950, 1, 1, tzinfo=UTC),
]


def test_aware_times_round_trip_as_utc_and_compare_in_sql(db_rt):
    with db_rt.store.session() as s:
        s.add_all([_holder(i + 1, when) for i, when in enumerate(WHEN)])
    with db_rt.store.session() as s:
        back = {h.id: h.created_at for h in s.scalars(select(Holder))}
        # SQL comparisons see the same order as Python's (SQLite compares the stored text).
        earlier = set(s.scalars(select(Holder.id).where(Holder.created_at < WHEN[0] + timedelta(microseconds=1))))
    assert [back[i + 1] for i in range(len(WHEN))] == WHEN
    assert all(v.tzinfo == UTC for v in back.values())
    assert earlier == {i + 1 for i, when in enumerate(WHEN) if when <= WHEN[0]}


def test_naive_time_is_refused_and_nothing_written(db_rt):
    with pytest.raises(Exception, match="naive datetime"), db_rt.store.session() as s:
        s.add(_holder(1, datetime(2026, 1, 1)))
    with db_rt.store.session() as s:
        assert s.scalar(select(Holder.id)) is None


def test_sqlite_text_is_the_stock_storage_format(rt):
    """Rows written through our faster bind step and through SQLAlchemy's stock sqlite.DATETIME
    hold identical text, so existing data and SQL text comparisons stay consistent."""
    with rt.store.session() as s:
        s.add_all([_holder(i + 1, when) for i, when in enumerate(WHEN)])
    stock = sqlite.DATETIME().bind_processor(sqlite.dialect())
    with rt.store.engine.connect() as conn:
        stored = conn.execute(text("SELECT created_at FROM holders ORDER BY id")).scalars().all()
        # And values written by the stock type read back through ours.
        stock_holders = table("holders", column("created_at", DateTime))
        conn.execute(stock_holders.update().values(created_at=WHEN[2].replace(tzinfo=None)))
        conn.commit()
    assert stored == [stock(w.astimezone(UTC).replace(tzinfo=None)) for w in WHEN]
    assert stored[0] == "2026-11-26 03:04:05.123456" and stored[2] == "2049-12-31 23:59:59.000000"
    with rt.store.session() as s:
        assert set(s.scalars(select(Holder.created_at))) == {WHEN[2]}
