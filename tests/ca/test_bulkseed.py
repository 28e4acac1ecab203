"""National-scale seeding (``jpki-mock seed --lazy``): records now, certificates signed on first use.

Every certificate is checked with implementations other than the writer's: the signature with
pyca/cryptography against the CA certificate, the fields with asn1crypto; OCSP answers and CRLs
are parsed back with asn1crypto."""

from __future__ import annotations

import threading

import pytest
from asn1crypto import ocsp as a_ocsp
from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import func, select

from jpki_mock.ca.bulkseed import _Writer, seed_records
from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.crl.publisher import CrlDeps, Publisher, Stream
from jpki_mock.db import libpq_url
from jpki_mock.vocab import CertState, Kind
from tests.support import HOLDER
from tests.support.crl import entries
from tests.support.ocsp import call, cert_id, multi_request, ocsp_app
from tests.support.pki import T0, fresh_pg_database

N = 400


def _seed(rt, n: int = N, **kw):
    return seed_records(rt, n, rng_seed=7, key_pool=3, progress=False, workers=0, **kw)


def _rows(rt, **where) -> list[Certificate]:
    with rt.store.session() as s:
        q = select(Certificate).order_by(Certificate.serial)
        for k, v in where.items():
            q = q.where(getattr(Certificate, k) == v)
        return list(s.scalars(q).all())


def _verify_against_ca(rt, row: Certificate, der: bytes) -> ax509.Certificate:
    issuer = rt.authority.issuer_by_id(row.ca_id).certificate
    cert = ax509.Certificate.load(der)
    issuer.public_key().verify(cert["signature_value"].native, cert["tbs_certificate"].dump(),
                               padding.PKCS1v15(), hashes.SHA256())
    tbs = cert["tbs_certificate"]
    assert tbs["serial_number"].native == row.serial
    assert cert.subject.native["common_name"] == row.subject_cn
    assert tbs["validity"]["not_before"].native == row.not_before
    assert tbs["validity"]["not_after"].native == row.not_after
    assert cert.issuer.dump() == ax509.Certificate.load(rt.authority.issuer_by_id(row.ca_id).der).subject.dump()
    return cert


def test_records_are_seeded_unsigned_with_the_mix_and_consistent_counters(db_rt):
    result = _seed(db_rt)
    assert result.holders == N and result.certificates > N  # adults hold two certificates
    rows = _rows(db_rt)
    assert len(rows) == result.certificates
    assert all(r.stored_der is None and r.seed_key is not None for r in rows)
    with pytest.raises(LookupError):
        _ = rows[0].der  # never None by accident
    revoked = [r for r in rows if r.status == CertState.REVOKED]
    assert len(revoked) == result.revoked and 0 < len(revoked) < len(rows) // 3
    assert len({r.status_seq for r in revoked}) == len(revoked)
    for kind in Kind:
        serials = [r.serial for r in rows if r.kind == kind]
        assert len(serials) == len(set(serials))

    # Later issuance and revocation carry on after the seeded numbers.
    holder = db_rt.authority.create_holder(HOLDER)
    issued = db_rt.authority.issue(holder.id, "auth", pkcs12_passphrase="a passphrase")[0].certificate
    assert issued.serial > max(r.serial for r in rows if r.kind == Kind.AUTH)
    assert holder.id > max(r.holder_id for r in rows if r.holder_id is not None)
    # PostgreSQL: the seeded rows carried ids reserved from the table's sequence; issuance's own
    # nextval carries on after them.
    assert _rows(db_rt, kind=Kind.AUTH, serial=issued.serial)[0].id > max(r.id for r in rows)
    good = next(r for r in rows if r.kind == Kind.AUTH and r.status == CertState.GOOD)
    db_rt.authority.revoke("auth", good.serial, "keyCompromise")
    after = _rows(db_rt, kind=Kind.AUTH, serial=good.serial)[0]
    assert after.status_seq > max(r.status_seq for r in revoked)


def test_ids_reserved_on_postgresql_hold_off_other_sessions_until_committed(rt_factory, tmp_path):
    """No other session's ``nextval`` can land inside a reserved range: it waits for the
    reserving transaction, then gets the first id after the range."""
    import psycopg

    url = fresh_pg_database()
    db_rt = rt_factory(tmp_path / "data", database_url=url)
    writer = _Writer(db_rt)
    cur = writer.conn.cursor()
    first = writer.reserve_ids(cur, 1000)
    other: list[int] = []

    def take() -> None:
        with psycopg.connect(libpq_url(url)) as conn:
            other.append(conn.execute("SELECT nextval(pg_get_serial_sequence('certificates', 'id'))").fetchone()[0])

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive() and not other  # waiting on the reserving transaction
    writer.conn.commit()
    thread.join(10)
    assert other == [first + 1000]
    writer.conn.close()


def test_a_record_is_signed_on_first_download_and_stored(db_rt):
    _seed(db_rt)
    for kind in Kind:
        row = next(r for r in _rows(db_rt, kind=kind) if r.status == CertState.GOOD)
        looked_up = db_rt.authority.get_certificate(kind, row.serial)
        der = db_rt.authority.der_of(looked_up)
        cert = _verify_against_ca(db_rt, row, der)
        assert _rows(db_rt, kind=kind, serial=row.serial)[0].stored_der == der  # stored: signed once
        assert db_rt.authority.der_of(db_rt.authority.get_certificate(kind, row.serial)) == der
        if kind == Kind.SIGN:
            with db_rt.store.session() as s:
                holder = s.get(Holder, row.holder_id)
                assert holder is not None
                name, address = holder.name, holder.address
            san = [n.chosen.native for n in cert.subject_alt_name_value]
            values = [v["value"] for v in san]
            assert name in values and address in values


def test_the_api_download_of_a_lazy_record_verifies(db_rt):
    from jpki_mock.app import create_admin_app

    _seed(db_rt, 40)
    row = next(r for r in _rows(db_rt, kind=Kind.SIGN))
    client = create_admin_app(db_rt).test_client()
    resp = client.get(f"/admin/api/certificates/sign/{row.serial}?format=der",
                      headers={"Authorization": f"Bearer {db_rt.token}"})
    assert resp.status_code == 200, resp.data
    _verify_against_ca(db_rt, row, resp.data)


def test_racing_first_uses_store_one_der(db_rt, rt_factory):
    _seed(db_rt, 60)
    other = rt_factory(db_rt.config.data_dir, database_url=db_rt.config.database_url, init=False)
    row = _rows(db_rt, kind=Kind.SIGN)[0]
    barrier, got = threading.Barrier(4), []

    def first_use(rt):
        cert = rt.authority.get_certificate("sign", row.serial)
        barrier.wait()
        got.append(rt.authority.der_of(cert))

    threads = [threading.Thread(target=first_use, args=(rt,)) for rt in (db_rt, other, db_rt, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and len(set(got)) == 1
    assert _rows(db_rt, kind=Kind.SIGN, serial=row.serial)[0].stored_der == got[0]
    _verify_against_ca(db_rt, row, got[0])


def test_a_basic_four_change_keeps_the_issued_subject(db_rt):
    _seed(db_rt, 60)
    row = next(r for r in _rows(db_rt, kind=Kind.SIGN) if r.status == CertState.GOOD)
    with db_rt.store.session() as s:
        holder = s.get(Holder, row.holder_id)
        assert holder is not None
        old_name = holder.name
    db_rt.authority.event(row.holder_id, "change", changes={"name": "試験\u3000花子"})
    cert = db_rt.authority.get_certificate("sign", row.serial)
    assert cert.status == CertState.REVOKED and cert.stored_der is not None  # signed before the change
    san = ax509.Certificate.load(db_rt.authority.der_of(cert)).subject_alt_name_value
    values = [n.chosen.native["value"] for n in san]
    assert old_name in values and "試験\u3000花子" not in values


def test_ocsp_and_crls_answer_for_lazy_records(db_rt):
    _seed(db_rt)
    rows = [r for r in _rows(db_rt) if r.not_after > db_rt.clock.now()]
    revoked = next(r for r in rows if r.status == CertState.REVOKED and r.kind == Kind.SIGN)
    good = next(r for r in rows if r.status == CertState.GOOD and r.kind == Kind.SIGN)
    issuer = db_rt.authority.issuer(Kind.SIGN).certificate
    app = ocsp_app(db_rt)
    body = multi_request([cert_id(issuer, good.serial), cert_id(issuer, revoked.serial)])
    resp = call(app, "POST", "/", body).asn1
    assert resp["response_status"].native == "successful"
    singles = {s["cert_id"]["serial_number"].native: s
               for s in resp["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]}
    assert singles[good.serial]["cert_status"].name == "good"
    status = singles[revoked.serial]["cert_status"]
    assert status.name == "revoked"
    assert status.chosen["revocation_time"].native == revoked.revoked_at
    assert isinstance(resp, a_ocsp.OCSPResponse)

    pub = Publisher(CrlDeps.of(db_rt))
    pub.publish_many(pub.streams())
    crl = pub.current_file(Stream(db_rt.authority.issuer(Kind.SIGN), "full", False)).read_bytes()
    listed = entries(crl)
    expected = {r.serial for r in _rows(db_rt, kind=Kind.SIGN, status=CertState.REVOKED)
                if r.not_after > db_rt.clock.now()}
    assert expected <= set(listed) and good.serial not in listed
    # Nothing was signed to answer: status needs only the records.
    with db_rt.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Certificate).where(Certificate.stored_der.is_not(None))) == 0


def test_the_cli_seeds_lazily(tmp_path):
    from click.testing import CliRunner

    from jpki_mock.cli import main

    env = {"JPKI_MOCK_DATA": str(tmp_path / "d"), "JPKI_MOCK_KEY_PASSPHRASE": "a passphrase for tests"}
    runner = CliRunner()
    assert runner.invoke(main, ["init"], env=env).exit_code == 0
    out = runner.invoke(main, ["seed", "--lazy", "--holders", "50", "--keys", "2", "--no-progress", "--seed", "3"],
                        env=env)
    assert out.exit_code == 0, out.output
    assert out.output.strip().splitlines()[-1].startswith("holders=50 certificates=")
    shown = runner.invoke(main, ["cert", "show", "--issuer", "auth", "--serial", "1000001", "--der"], env=env)
    assert shown.exit_code == 0
    assert ax509.Certificate.load(shown.stdout_bytes).serial_number == 1000001


def test_the_population_is_the_same_whatever_the_generating_processes(rt_factory, tmp_path):
    from jpki_mock.ca import bulkseed

    def rows(rt):
        with rt.store.session() as s:
            return s.execute(select(Certificate.kind, Certificate.serial, Certificate.subject_cn,
                                    Certificate.not_before, Certificate.not_after, Certificate.status,
                                    Certificate.reason).order_by(Certificate.kind, Certificate.serial)).all()

    one, two = rt_factory(tmp_path / "one"), rt_factory(tmp_path / "two")
    chunk = bulkseed.CHUNK
    bulkseed.CHUNK = 50  # several chunks in flight through the bounded window
    try:
        seed_records(one, 400, rng_seed=5, key_pool=2, progress=False, workers=0)
        seed_records(two, 400, rng_seed=5, key_pool=2, progress=False, workers=2)
    finally:
        bulkseed.CHUNK = chunk
    assert rows(one) == rows(two) and len(rows(one)) > 400


def test_sqlite_and_postgresql_receive_the_same_population(rt_factory, tmp_path):
    """SQLite's rows are joined strings, PostgreSQL's binary COPY rows (ca.pgcopy): read back
    through the ORM, a given seed is the same population in both, to the microsecond (the clock
    has some)."""
    from jpki_mock.ca.bulkseed import CERT_COLUMNS, HOLDER_COLUMNS
    from jpki_mock.clock import FixedClock

    clock = FixedClock(T0.replace(microsecond=123_456))
    stores = [rt_factory(tmp_path / "lite", clock),
              rt_factory(tmp_path / "pg", clock, database_url=fresh_pg_database())]
    seen = []
    for rt in stores:
        seed_records(rt, 1500, rng_seed=11, key_pool=2, progress=False, workers=0)
        with rt.store.session() as s:
            holders = [tuple(getattr(h, c) for c in HOLDER_COLUMNS)
                       for h in s.scalars(select(Holder).order_by(Holder.id))]
            certs = [tuple(getattr(c, k) for k in CERT_COLUMNS)
                     for c in s.scalars(select(Certificate).order_by(Certificate.kind, Certificate.serial))]
        seen.append((holders, certs))
    (lite_h, lite_c), (pg_h, pg_c) = seen
    assert len(lite_h) == 1500 and len(lite_c) > 1500
    assert any(c[CERT_COLUMNS.index("revoked_at")] is not None for c in lite_c)
    assert lite_h == pg_h
    assert lite_c == pg_c
    assert {c[CERT_COLUMNS.index("not_before")].microsecond for c in pg_c} == {123_456}


def test_each_record_is_what_the_profile_makes_of_its_holder(db_rt):
    """The vectorised generator against the profile's own scalar rules (ca.basic4, ca.profile):
    notAfter is 23:59:59 JST of the fifth birthday after the JST day of issuance (an expired
    record's is in the past), a signature CN is issuance time + sequence + office code, a
    user-auth CN 23 base32 characters, and only holders 15 or older hold a signature certificate."""
    from datetime import UTC, datetime, time, timedelta

    from jpki_mock import municipalities
    from jpki_mock.ca import basic4 as b4
    from jpki_mock.ca.issuance import MIN_SIGN_AGE
    from jpki_mock.clock import JST

    _seed(db_rt, 1500)
    now = db_rt.clock.now()
    with db_rt.store.session() as s:
        holders = {h.id: h for h in s.scalars(select(Holder))}
    rows = _rows(db_rt)
    by_holder: dict[int, set[str]] = {}
    checked = expired = 0
    for r in rows:
        holder = holders[r.holder_id]
        birth = b4.decode_dob(holder.date_of_birth)
        issued_jst = r.not_before.astimezone(JST)
        by_holder.setdefault(r.holder_id, set()).add(r.kind)
        assert r.municipality == holder.municipality
        assert holder.address.startswith(municipalities.get(holder.municipality).address_prefix)
        assert len(holder.name_flags) == len(holder.name) and len(holder.address_flags) == len(holder.address)
        if r.not_after <= now:
            expired += 1
            assert r.not_before < now - timedelta(days=5 * 365)
            continue
        end = b4.nth_birthday_after(birth, issued_jst.date(), 5)
        assert r.not_after == datetime.combine(end, time(23, 59, 59), JST).astimezone(UTC), (r.serial, birth)
        if r.kind == Kind.SIGN:
            assert b4.age_on(birth, now.astimezone(JST).date()) >= MIN_SIGN_AGE
            assert r.subject_cn == f"{issued_jst:%Y%m%d%H%M%S}{r.serial % 1_000_000:06d}{holder.municipality}"
        else:
            assert len(r.subject_cn) == 23 and set(r.subject_cn) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        checked += 1
    assert checked > 1500 and 0 < expired < len(rows) // 10
    minors = [h for h in holders.values()
              if b4.age_on(b4.decode_dob(h.date_of_birth), now.astimezone(JST).date()) < MIN_SIGN_AGE]
    assert minors and all(by_holder[h.id] == {Kind.AUTH} for h in minors)
    # A 29 February birthday is a case of its own: check it when the sample has one.
    leap = [r for r in rows if holders[r.holder_id].date_of_birth[5:] == "0229" and r.not_after > now]
    for r in leap:
        assert r.not_after.astimezone(JST).strftime("%m%d") in ("0228", "0229")


def test_the_partitions_in_use_are_those_the_records_name(db_rt):
    _seed(db_rt, 300)
    holder = db_rt.authority.create_holder({**HOLDER, "address": "北海道夕張市本町1丁目1番1号"})
    db_rt.authority.issue(holder.id, "auth", pkcs12_passphrase="a passphrase")
    for kind in Kind:
        issuer = db_rt.authority.issuer(kind)
        with db_rt.store.session() as s:
            named = sorted(s.scalars(select(Certificate.municipality).where(Certificate.ca_id == issuer.id).distinct()))
        assert db_rt.status.municipalities_of(issuer.id) == named and len(named) > 50
    assert "01209" in db_rt.status.municipalities_of(db_rt.authority.issuer(Kind.AUTH).id)


def test_a_seed_killed_mid_load_leaves_whole_chunks_and_its_indexes_come_back(tmp_path):
    """SIGKILL to the seeding process group while it loads (indexes dropped, chunks committing):
    what is in the store is whole chunks, each holder with its certificates; the next process to
    open the store builds the missing indexes; a new seed carries on after the numbers reserved."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from sqlalchemy import inspect

    from jpki_mock.ca import bulkseed
    from jpki_mock.db import Base
    from tests.support.pki import PASSPHRASE, open_runtime

    env = {**os.environ, "JPKI_MOCK_DATA": str(tmp_path), "JPKI_MOCK_KEY_PASSPHRASE": PASSPHRASE}
    open_runtime(tmp_path).close()
    proc = subprocess.Popen([sys.executable, "-m", "jpki_mock.cli", "seed", "--lazy", "--holders", "2000000",
                             "--no-progress", "--seed", "9"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = sqlite3.connect(tmp_path / "jpki.db")
    deadline = time.monotonic() + 120
    try:
        while db.execute("SELECT count(*) FROM holders").fetchone()[0] < 2 * bulkseed.CHUNK:
            assert proc.poll() is None and time.monotonic() < deadline, "the seed ended before it was killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    dropped = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    assert "ix_certificates_not_after" not in dropped  # killed while the indexes were down

    rt = open_runtime(tmp_path, init=False)
    found = inspect(rt.store.engine)
    for table in Base.metadata.sorted_tables:
        have = {i["name"] for i in found.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= have, table.name
    with rt.store.session() as s:
        holders = s.scalar(select(func.count()).select_from(Holder))
        certs = s.scalar(select(func.count()).select_from(Certificate))
        orphans = s.scalar(select(func.count()).select_from(Holder).where(
            ~select(Certificate.id).where(Certificate.holder_id == Holder.id).exists()))
    assert holders > 0 and holders % bulkseed.CHUNK == 0 and certs > holders and orphans == 0
    top = max(r.serial for r in _rows(rt, kind=Kind.AUTH))
    rt.close()
    more = seed_records(open_runtime(tmp_path, init=False), 50, rng_seed=10, key_pool=2, progress=False, workers=0)
    assert more.holders == 50
    rt = open_runtime(tmp_path, init=False)
    auth = [r.serial for r in _rows(rt, kind=Kind.AUTH)]
    assert len(auth) == len(set(auth)) and min(s for s in auth if s > top) > top
