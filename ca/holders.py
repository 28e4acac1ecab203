"""Card holders: registering one (its basic four and card expiry), reading and listing them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jpki_mock import audit, municipalities
from jpki_mock.ca import basic4 as b4
from jpki_mock.ca.inputs import MAX_INT32, page, whole_number
from jpki_mock.ca.models import Holder
from jpki_mock.ca.work import Begin
from jpki_mock.clock import JST, Clock
from jpki_mock.db import Store
from jpki_mock.errors import InvalidInput, NotFound
from jpki_mock.vocab import HolderState

#: the basic four (with their flags and the municipality that keeps the record)
BASIC4_FIELDS = ["name", "date_of_birth", "gender", "address", "name_flags", "address_flags", "municipality"]
HOLDER_FIELDS = [*BASIC4_FIELDS, "card_expiry"]
ADULT_AGE = 18
_ID = re.compile(r"[0-9]{1,10}")


def default_card_expiry(birth: date, today: date) -> date:
    """The card itself: 10th birthday after issue for adults, 5th for under-18s [C]."""
    years = 10 if b4.age_on(birth, today) >= ADULT_AGE else 5
    return b4.nth_birthday_after(birth, today, years)


def holder_id_of(value: Any) -> int:
    """A holder id (an Integer column): ASCII digits or a JSON integer, 1 .. 2^31-1."""
    if isinstance(value, str) and not _ID.fullmatch(value):
        raise InvalidInput(f"{value!r} is not a holder id", field="holder", allowed=f"1-{MAX_INT32}")
    return whole_number(value, "holder", 1, MAX_INT32)


class Holders:
    def __init__(self, store: Store, clock: Clock, begin: Begin):
        self.store = store
        self.clock = clock
        self.begin = begin

    def default_card_expiry(self, birth: date, today: date) -> date:
        return default_card_expiry(birth, today)

    @audit.operation("holder.add")
    def create_holder(self, data: Mapping[str, Any]) -> Holder:
        info = b4.validate(data)
        today = self.clock.now().astimezone(JST).date()
        birth = info.birth_date
        if birth > today:
            raise InvalidInput("is in the future", field="date_of_birth")
        expiry = data.get("card_expiry")
        if expiry is None:
            card_expiry = default_card_expiry(birth, today)
        else:
            parsed: date | None
            try:
                parsed = date.fromisoformat(expiry) if isinstance(expiry, str) else None
            except ValueError:
                parsed = None
            if parsed is None:
                raise InvalidInput(f"{expiry!r} is not an ISO date", field="card_expiry", allowed="YYYY-MM-DD")
            card_expiry = parsed
            if card_expiry <= today:
                raise InvalidInput("is not after today", field="card_expiry")
        unknown = set(data) - set(HOLDER_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown field(s) {sorted(unknown)}", field=sorted(unknown)[0], allowed=HOLDER_FIELDS)
        now = self.clock.now()
        with self.begin() as work:
            holder = Holder(**info.as_dict(), card_expiry=card_expiry, state=HolderState.ACTIVE,
                            created_at=now, updated_at=now)
            work.session.add(holder)
            work.session.flush()
            audit.note(f"holder {holder.id}")
        return holder

    def get_holder(self, holder_id: Any) -> Holder:
        """The holder with its certificates loaded."""
        holder_id = holder_id_of(holder_id)
        with self.store.session() as s:
            return self.load(s, holder_id)

    @staticmethod
    def load(s: Session, holder_id: int, *, lock: bool = False) -> Holder:
        """The holder as session ``s`` sees it, with its certificates loaded.

        ``lock``: first a write that changes nothing (``UPDATE holders SET id = id``), which locks
        the row on PostgreSQL and takes SQLite's one write lock, until the transaction ends; what is
        read after it includes every transaction committed before, so two operations replacing one
        holder's certificates queue and the second sees the first's certificates."""
        if lock:
            s.execute(update(Holder).where(Holder.id == holder_id).values(id=Holder.id))
        holder = s.get(Holder, holder_id, populate_existing=lock)
        if holder is None:
            raise NotFound(f"no holder with id {holder_id}", field="holder")
        _ = holder.certificates
        return holder

    def list_holders(self, *, municipality: str | None = None, state: str | None = None,
                     limit: int = 100, offset: int = 0) -> list[Holder]:
        limit, offset = page(limit, offset)
        q = select(Holder).order_by(Holder.id)
        # ``is not None``: an empty ?municipality= or ?state= is refused (as /certificates does),
        # not silently read as "any".
        if municipality is not None:
            municipality = municipalities.get(municipality).code  # the 6-digit form finds the same rows
            q = q.where(Holder.municipality == municipality)
        if state is not None:
            if state not in tuple(HolderState):
                raise InvalidInput(f"{state!r} is not a holder state", field="state", allowed=list(HolderState))
            q = q.where(Holder.state == state)
        with self.store.session() as s:
            return list(s.scalars(q.limit(limit).offset(offset)).all())
