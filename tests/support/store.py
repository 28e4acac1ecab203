"""What a rejected request must leave exactly as it was: every row of every table, the
revocation sequence and the time-travel offset.  The audit log is the exception: a refused
request is recorded there (docs/audit.md), so only its ``ok`` rows count as the state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from jpki_mock import audit
from jpki_mock.audit import AuditEntry
from jpki_mock.db import Base
from jpki_mock.travel import TravellingClock


def snapshot(rt: Any) -> dict[str, Any]:
    """The whole store of runtime ``rt`` (the tables are small in tests), its revocation
    sequence and its time-travel offset, comparable with ``==``."""
    out: dict[str, Any] = {}
    with rt.store.session() as s:
        for table in Base.metadata.sorted_tables:
            query = select(table)
            if table.name == AuditEntry.__tablename__:
                query = query.where(table.c.result == audit.OK)
            out[table.name] = sorted(repr(tuple(row)) for row in s.execute(query).all())
    out["revocation_seq"] = rt.status.current_seq()
    clock = rt.clock
    out["clock_offset"] = clock.offset() if isinstance(clock, TravellingClock) else None
    return out
