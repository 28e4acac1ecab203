"""Each authority operation is one unit of work: a failure midway leaves the store as it was and
publishes nothing on the revocation epoch (ca/work.py)."""

import pytest
from sqlalchemy import select

from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.db import Counter
from jpki_mock.vocab import HolderEvent, HolderState, Reason
from tests.support import HOLDER


class Midway(RuntimeError):
    pass


def snapshot(rt):
    """Everything an operation could have written: holders, certificates and every counter."""
    with rt.store.session() as s:
        holders = [(h.id, h.state, h.updated_at) for h in s.scalars(select(Holder).order_by(Holder.id))]
        certs = [(c.id, c.serial, c.status, c.reason, c.revoked_at, c.status_seq)
                 for c in s.scalars(select(Certificate).order_by(Certificate.id))]
        counters = dict(s.execute(select(Counter.name, Counter.value)).all())
    return holders, certs, counters


def failing_issuance(rt, monkeypatch, revocations: list):
    """Issuance that raises after the unit of work has staged the renewal's revocations."""
    revoke_row = rt.authority.revocation.revoke_row

    def recording(work, cert, code):
        revoke_row(work, cert, code)
        revocations.append((cert.serial, code, work.revocation_seq))

    def stage(work, plan):
        assert revocations, "the revocations are staged before the new certificates"
        raise Midway("issuance failed")

    monkeypatch.setattr(rt.authority.revocation, "revoke_row", recording)
    monkeypatch.setattr(rt.authority.issuance, "stage", stage)


@pytest.mark.parametrize("lost", [False, True])
def test_renewal_failing_after_its_revocations_changes_nothing(db_rt, monkeypatch, lost):
    h = db_rt.authority.create_holder(HOLDER)
    db_rt.authority.issue(h.id, "both", pkcs12_passphrase="pass1234")
    if lost:
        db_rt.authority.event(h.id, HolderEvent.LOSS)
    before, epoch = snapshot(db_rt), db_rt.epoch.read()
    revocations: list = []
    failing_issuance(db_rt, monkeypatch, revocations)
    with pytest.raises(Midway):
        db_rt.authority.event(h.id, HolderEvent.RENEWAL, pkcs12_passphrase="pass1234")
    # Both old certificates were revoked (superseded) inside the unit before it failed ...
    assert sorted(code for _, code, _ in revocations) == [Reason.SUPERSEDED, Reason.SUPERSEDED]
    # ... and none of it reached the store or the responders.
    assert snapshot(db_rt) == before
    assert db_rt.epoch.read() == epoch
    assert db_rt.authority.get_holder(h.id).state == (HolderState.LOST if lost else HolderState.ACTIVE)
    # The same renewal, without the failure, goes through once.
    monkeypatch.undo()
    result = db_rt.authority.event(h.id, HolderEvent.RENEWAL, pkcs12_passphrase="pass1234")
    assert len(result["issued"]) == 2 and db_rt.epoch.read() == db_rt.status.current_seq() > epoch


def test_renewal_publishes_the_epoch_after_its_commit(db_rt, monkeypatch):
    h = db_rt.authority.create_holder(HOLDER)
    old = db_rt.authority.issue(h.id, "auth", pkcs12_passphrase="pass1234")[0].certificate
    seen = []

    def publish(seq):  # what a responder would read the moment the epoch moves
        st = db_rt.status.lookup(old.ca_id, old.serial)
        seen.append((seq, st.status, st.status_seq))

    monkeypatch.setattr(db_rt.epoch, "publish", publish)
    db_rt.authority.event(h.id, HolderEvent.RENEWAL, pkcs12_passphrase="pass1234")
    [(seq, status, status_seq)] = seen
    assert status == "revoked" and status_seq == seq  # committed before it was published


def test_request_with_a_bad_reason_writes_nothing(db_rt):
    h = db_rt.authority.create_holder(HOLDER)
    db_rt.authority.issue(h.id, "both", pkcs12_passphrase="pass1234")
    before = snapshot(db_rt)
    with pytest.raises(Exception, match="not a JPKI revocation reason"):
        db_rt.authority.event(h.id, HolderEvent.REQUEST, reason="removeFromCRL")
    assert snapshot(db_rt) == before
