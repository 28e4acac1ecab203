"""Resident-registry and card events (異動等情報, docs/lifecycle.md) and the revocations they
cause.  Each event is one unit of work: its revocations, holder changes and (for a renewal)
new certificates commit together or not at all."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_mock import audit
from jpki_mock.ca import basic4 as b4
from jpki_mock.ca import keys
from jpki_mock.ca.holders import BASIC4_FIELDS, Holders, holder_id_of
from jpki_mock.ca.inputs import BOTH, kinds_of, reason_code
from jpki_mock.ca.issuance import ISSUE_FIELDS, Issuance, Issued, Plan, pkcs12_passphrase
from jpki_mock.ca.models import Certificate, Holder
from jpki_mock.ca.revocation import Revocation
from jpki_mock.ca.status import HOLD, REASON_NAMES
from jpki_mock.ca.work import Begin, UnitOfWork
from jpki_mock.clock import Clock
from jpki_mock.errors import Conflict, InvalidInput
from jpki_mock.vocab import KINDS, HolderEvent, HolderState, Kind, Reason

#: holder states after which only a basic-four change is still recorded
CLOSED_STATES = (HolderState.DECEASED, HolderState.RETURNED)
#: holder states a renewal starts from: a lost card that was found is renewed too [C]
RENEWABLE = (HolderState.ACTIVE, HolderState.LOST)
#: the basic-four items a change event compares (the flags follow their text)
_COMPARED = ("name", "date_of_birth", "gender", "address", "municipality")
#: the fields each event takes besides ``event`` itself (docs/lifecycle.md)
EVENT_FIELDS: dict[HolderEvent, tuple[str, ...]] = {
    HolderEvent.CHANGE: ("changes",),
    HolderEvent.DEATH: (),
    HolderEvent.CARD_RETURN: (),
    HolderEvent.REQUEST: ("reason", "kinds"),
    HolderEvent.LOSS: (),
    HolderEvent.RENEWAL: ("kinds", *ISSUE_FIELDS),
}


def _reason_name(cert: Certificate) -> str:
    # Revocation.revoke_row sets the reason of every certificate it revokes.
    assert cert.reason is not None
    return REASON_NAMES[cert.reason]


def _event_action(args: Mapping[str, Any]) -> str:
    """``holder.loss``, ``holder.renewal``, ...: the event names the action (one not in the
    vocabulary is recorded as ``holder.event``, refused)."""
    event = args["event"]
    return f"holder.{event}" if isinstance(event, str) and event in tuple(HolderEvent) else "holder.event"


def summary(event: str, revoked: list[Certificate], **extra: Any) -> dict[str, Any]:
    return {"event": event, "revoked": [
        {"kind": c.kind, "serial": c.serial, "reason": _reason_name(c)} for c in revoked], **extra}


class Events:
    def __init__(self, clock: Clock, holders: Holders, issuance: Issuance, revocation: Revocation, begin: Begin):
        self.clock = clock
        self.holders = holders
        self.issuance = issuance
        self.revocation = revocation
        self.begin = begin

    @audit.operation(_event_action, "holder {holder_id}")
    def event(self, holder_id: Any, event: Any, **data: Any) -> dict[str, Any]:
        """Apply a resident-registry or card event (docs/lifecycle.md); returns what changed."""
        if not isinstance(event, str) or event not in tuple(HolderEvent):
            raise InvalidInput(f"{event!r} is not an event", field="event", allowed=list(HolderEvent))
        accepted = EVENT_FIELDS[HolderEvent(event)]
        unknown = sorted(set(data) - set(accepted))
        if unknown:
            raise InvalidInput(f"unknown field(s) {unknown} for event {event!r}", field=unknown[0],
                               allowed=["event", *accepted])
        holder = self.holders.get_holder(holder_id)
        if holder.state in CLOSED_STATES and event != HolderEvent.CHANGE:
            raise Conflict(f"holder {holder.id}'s card is {holder.state}", field="holder")
        handler: Callable[..., dict[str, Any]] = getattr(self, f"_event_{HolderEvent(event).value}")
        return handler(holder, **data)

    def _revoke(self, holder: Holder, kinds: Iterable[str], code: Reason, **kw: Any) -> list[Certificate]:
        with self.begin() as work:
            h = Holders.load(work.session, holder.id)
            return self.revocation.revoke_holder(work, h, kinds, code, **kw)

    def _event_change(self, holder: Holder, changes: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """A basic-four change revokes the signature certificate (affiliationChanged); the
        user-auth certificate carries no personal data and stays valid [C]."""
        if extra:
            raise InvalidInput(f"unknown field(s) {sorted(extra)}", field=sorted(extra)[0], allowed=["changes"])
        if not isinstance(changes, Mapping) or not changes:
            raise InvalidInput("must be an object with the changed basic-four items", field="changes",
                               allowed=BASIC4_FIELDS)
        merged = {k: getattr(holder, k) for k in _COMPARED}
        merged.update(changes)
        # Flags follow their text: reset to all-zero when the text changes and no flags are given.
        if "name" in changes and "name_flags" not in changes:
            merged.pop("name_flags", None)
        elif "name_flags" not in changes:
            merged["name_flags"] = holder.name_flags
        if "address" in changes and "address_flags" not in changes:
            merged.pop("address_flags", None)
        elif "address_flags" not in changes:
            merged["address_flags"] = holder.address_flags
        if "address" in changes and "municipality" not in changes:
            merged.pop("municipality")
        new = b4.validate(merged).as_dict()
        if all(getattr(holder, k) == v for k, v in new.items()):
            raise InvalidInput("changes nothing", field="changes")
        revoked = self._revoke(holder, [Kind.SIGN], Reason.AFFILIATION_CHANGED, holder_update=new)
        return summary(HolderEvent.CHANGE, revoked, holder=new)

    def _event_death(self, holder: Holder) -> dict[str, Any]:
        revoked = self._revoke(holder, KINDS, Reason.CESSATION_OF_OPERATION, state=HolderState.DECEASED,
                               include_held=True)
        return summary(HolderEvent.DEATH, revoked)

    def _event_card_return(self, holder: Holder) -> dict[str, Any]:
        revoked = self._revoke(holder, KINDS, Reason.CESSATION_OF_OPERATION, state=HolderState.RETURNED,
                               include_held=True)
        return summary(HolderEvent.CARD_RETURN, revoked)

    def _event_request(self, holder: Holder, reason: Any = Reason.CESSATION_OF_OPERATION.rfc_name,
                       kinds: Any = BOTH) -> dict[str, Any]:
        """The holder asks the municipality to revoke (one or both certificates)."""
        code = reason_code(reason)
        if code == HOLD:
            raise InvalidInput("a hold comes from a loss report: use the 'loss' event", field="reason")
        revoked = self._revoke(holder, kinds_of(kinds), code, include_held=True)
        return summary(HolderEvent.REQUEST, revoked)

    def _event_loss(self, holder: Holder) -> dict[str, Any]:
        """Loss reported to the 24h hotline: both certificates on hold [C]."""
        if holder.state == HolderState.LOST:
            raise Conflict(f"holder {holder.id}'s card is already reported lost", field="holder")
        revoked = self._revoke(holder, KINDS, HOLD, state=HolderState.LOST)
        return summary(HolderEvent.LOSS, revoked)

    def _event_renewal(self, holder: Holder, **spec: Any) -> dict[str, Any]:
        """New certificates replace the current ones, which are revoked as superseded.  Also the way
        back from a hold: a found card gets its certificates revoked and reissued [C].

        One unit of work: the revocations, the holder's way back to active and the new
        certificates commit together, so a failure anywhere leaves the store as it was.  For a
        holder whose keys are on a card, the card renews (the kit's ``card renew``): new keys are
        made there, and certificates for keys made here would leave the card holding revoked ones."""
        requested = spec.pop("kinds", BOTH)
        passphrase = pkcs12_passphrase(spec)
        with self.begin() as work:
            self.issuance.check_custody(work, holder.id)
            h = Holders.load(work.session, holder.id, lock=True)
            current = self.revocation.active(work.session, h, KINDS, include_held=True)
            kinds = [k for k in KINDS if any(c.kind == k for c in current)] or kinds_of(requested)
            plan = self.issuance.plan(h, self.issuance.subject_keys(kinds, spec), pkcs12_passphrase=passphrase,
                                      replace=True, states=RENEWABLE)
            issued = self._renew(work, h, current, plan)
        return {**summary(HolderEvent.RENEWAL, current), "issued": issued}

    def renew_keys(self, work: UnitOfWork, holder_id: Any, public_keys: Mapping[str, rsa.RSAPublicKey]) -> \
            tuple[list[Certificate], list[Issued]]:
        """The renewal event for keys generated on the holder's card (the kit's software card), inside
        the caller's unit of work so the card's new keys commit with their certificates: every current
        certificate (good or held) is revoked as superseded, a lost card's holder is active again,
        and the new keys are certified.  Returns (revoked, issued)."""
        h = Holders.load(work.session, holder_id_of(holder_id), lock=True)
        current = self.revocation.active(work.session, h, KINDS, include_held=True)
        kinds = kinds_of(list(public_keys))
        subject_keys = {k: (keys.check_subject_key(public_keys[k], f"{k}_public_key"), None) for k in kinds}
        plan = self.issuance.plan(h, subject_keys, replace=True, states=RENEWABLE)
        return current, self._renew(work, h, current, plan)

    def _renew(self, work: UnitOfWork, h: Holder, current: list[Certificate], plan: Plan) -> list[Issued]:
        for cert in current:
            self.revocation.revoke_row(work, cert, Reason.SUPERSEDED)
        if h.state == HolderState.LOST:
            h.state = HolderState.ACTIVE
            h.updated_at = self.clock.now()
        return self.issuance.stage(work, plan)
