"""The status reads a national population depends on use their indexes (SQLite's query plans).

The CRL and change-feed indexes are partial (revoked rows; rows whose status changed), and SQLite
uses a partial index only when the query repeats its predicate literally: a query rewritten with
a bound parameter would still return the right rows, over a full scan of 10 M records.  Each
read is run for real, its SQL captured, and SQLite's EXPLAIN QUERY PLAN of that SQL read back."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event

from jpki_mock.vocab import Kind
from tests.support import HOLDER


def _plans(rt, read) -> list[str]:
    """SQLite's plan of every SELECT on certificates that ``read()`` ran."""
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "certificates" in statement:
            seen.append((statement, parameters))

    event.listen(rt.store.engine, "before_cursor_execute", capture)
    try:
        read()
    finally:
        event.remove(rt.store.engine, "before_cursor_execute", capture)
    assert seen, "the read ran no query on certificates"
    out = []
    with rt.store.engine.connect() as conn:
        for statement, parameters in seen:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            out.append(" | ".join(str(r[-1]) for r in rows))
    return out


def _some_revocations(rt):
    holder = rt.authority.create_holder(HOLDER)
    issued = rt.authority.issue(holder.id, "both", pkcs12_passphrase="a passphrase")
    rt.authority.revoke("auth", issued[-1].certificate.serial, "keyCompromise")
    return rt.authority.issuer(Kind.AUTH), holder


def test_crl_reads_use_the_revoked_only_indexes(rt):
    issuer, holder = _some_revocations(rt)
    now = rt.clock.now()
    full = _plans(rt, lambda: list(rt.status.revoked_rows(issuer.id, expired_before=now)))
    assert all("ix_cert_crl" in p for p in full), full
    part = _plans(rt, lambda: list(rt.status.revoked_rows(issuer.id, municipality=holder.municipality)))
    assert all("ix_cert_partition" in p for p in part), part
    delta = _plans(rt, lambda: list(rt.status.revoked_rows(issuer.id, revoked_after=now - timedelta(days=1),
                                                           changed_after_seq=0)))
    assert all("ix_cert_crl" in p or "ix_cert_status_seq" in p for p in delta), delta
    count = _plans(rt, lambda: rt.status.count_revoked(issuer.id, holder.municipality))
    assert all("ix_cert_partition" in p for p in count), count


def test_the_change_feed_and_lookups_use_their_indexes(rt):
    issuer, _ = _some_revocations(rt)
    feed = _plans(rt, lambda: rt.status.changes_since(0))
    assert all("ix_cert_status_seq" in p for p in feed), feed
    lookup = _plans(rt, lambda: rt.status.lookup(issuer.id, 1))
    assert all("uq_cert_issuer_serial" in p or "sqlite_autoindex_certificates" in p for p in lookup), lookup
