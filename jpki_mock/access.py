"""Access control for registered relying parties, shared by the CRL and OCSP endpoints.

J-LIS answers only registered verifiers (docs/sources.md section 1).  A relying party sends
its credential with any standard client as an HTTP header:

    Authorization: Bearer rp_...        (e.g. ``openssl ocsp -header Authorization "Bearer rp_..."``)
    X-JPKI-Relying-Party: rp_...        (for clients that reserve Authorization)

Lookups are cached per process for ``ttl`` seconds (the hot path must not hit the database
per request), and each cached lookup remembers the access sequence (:mod:`jpki_mock.epoch`) it
was made at.  Removing a party (or revoking an admin token) takes the next value of that
sequence in its transaction and publishes it after the commit, before it returns; every
process compares the sequence before trusting a cached lookup, so a removed party's next
request, in any process, is refused.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from wsgiref.types import WSGIEnvironment

from sqlalchemy import Boolean, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from jpki_mock import audit
from jpki_mock.clock import Clock
from jpki_mock.db import Base, Store, UTCDateTime, next_values
from jpki_mock.epoch import ACCESS_CHANNEL, ACCESS_SEQ, RevocationEpoch, access_cell, await_delivery, notify
from jpki_mock.errors import Conflict, InvalidInput, NotFound, Unauthorized
from jpki_mock.vocab import KINDS

#: what a relying party may verify: one certificate kind, or "both"
RP_KINDS: tuple[str, ...] = (*(k.value for k in KINDS), "both")


class ApiToken(Base):
    """Admin API bearer tokens, stored as SHA-256 (shown once at creation)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RelyingParty(Base):
    """A registered verifier (署名検証者 / 利用者証明検証者) allowed to query CRLs and OCSP."""

    __tablename__ = "relying_parties"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: sign | auth | both: which certificate kinds it may query
    kinds: Mapped[str] = mapped_column(String(4))
    credential_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class Party:
    id: int
    name: str
    kinds: str  # sign | auth | both

    def may_query(self, kind: str) -> bool:
        return self.kinds == "both" or self.kinds == kind


def credential_from_environ(environ: WSGIEnvironment) -> str | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return environ.get("HTTP_X_JPKI_RELYING_PARTY") or None


class AccessControl:
    """``changes``: item 0 is the access sequence now (:func:`jpki_mock.epoch.access_cell`; by
    default from the database).  A cached lookup is used only while it is younger than ``ttl``
    and the sequence has not moved since it was made."""

    def __init__(self, store: Store, ttl: float = 5.0, changes: Sequence[int] | None = None):
        self.store = store
        self.ttl = ttl
        self.changes = access_cell(store, None) if changes is None else changes
        self._cache: dict[str, tuple[float, int, Party | None]] = {}
        self._lock = threading.Lock()

    def party(self, credential: str | None) -> Party | None:
        """The active relying party holding ``credential``, or None."""
        if not credential or len(credential) > 256:
            return None
        digest = hashlib.sha256(credential.encode()).hexdigest()
        now = time.monotonic()
        # Read before the lookup: a removal committed after this read moves the sequence past
        # the value stored with the result, so the result is not trusted again.
        seq = self.changes[0]
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now and hit[1] == seq:
            return hit[2]
        with self.store.session() as s:
            row = s.scalars(select(RelyingParty).where(RelyingParty.credential_sha256 == digest,
                                                       RelyingParty.active.is_(True))).first()
            party = None if row is None else Party(row.id, row.name, row.kinds)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.ttl, seq, party)
        return party

    def from_environ(self, environ: WSGIEnvironment) -> Party | None:
        return self.party(credential_from_environ(environ))


def new_token(session: Session, label: str, now: datetime) -> str:
    """A new admin API bearer token, added to ``session`` (kept as SHA-256; shown once)."""
    token = "jpkim_" + secrets.token_urlsafe(32)
    session.add(ApiToken(label=label, token_sha256=hashlib.sha256(token.encode()).hexdigest(), created_at=now))
    return token


class Registry:
    """Who may use the mock: admin API tokens and registered relying parties."""

    def __init__(self, store: Store, clock: Clock, epoch: RevocationEpoch | None = None):
        self.store = store
        self.clock = clock
        #: this host's epoch file, where access changes are published for its processes
        self.epoch = epoch

    def _access_changed(self, session: Session) -> int:
        """Take the next access sequence value in ``session``'s transaction and queue its
        notification (PostgreSQL delivers it at commit); :meth:`_published` after the commit."""
        seq = next_values(session, ACCESS_SEQ, start=1)
        notify(session, ACCESS_CHANNEL, seq)
        return seq

    def _published(self, seq: int) -> None:
        if self.epoch is not None:
            self.epoch.publish_access(seq)
        await_delivery(self.store, ACCESS_CHANNEL, seq)

    @audit.operation("token.create", "{label}")
    def create_token(self, label: str = "cli") -> str:
        self.store.require_initialised()
        with self.store.session() as s:
            return new_token(s, label, self.clock.now())

    def check_token(self, token: str | None) -> str:
        """The label of the live admin token ``token`` (who is acting, for the audit log), or Unauthorized."""
        if not token:
            raise Unauthorized("missing bearer token", field="Authorization", allowed="Authorization: Bearer <token>")
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self.store.session() as s:
            live = select(ApiToken).where(ApiToken.token_sha256 == digest, ApiToken.revoked.is_(False))
            row = s.scalars(live).first()
        if row is None:
            raise Unauthorized("invalid bearer token", field="Authorization")
        return row.label

    @audit.operation("rp.add", "{name} {kinds}")
    def add_relying_party(self, name: Any, kinds: Any = "both") -> tuple[RelyingParty, str]:
        """Register a verifier; returns it and its credential (shown once)."""
        if not isinstance(name, str) or not 1 <= len(name) <= 100 or not name.isprintable():
            raise InvalidInput("must be 1-100 printable characters", field="name")
        if kinds not in RP_KINDS:
            raise InvalidInput(f"{kinds!r} is not allowed", field="kinds", allowed=list(RP_KINDS))
        credential = "rp_" + secrets.token_urlsafe(24)
        with self.store.session() as s:
            if s.scalars(select(RelyingParty).where(RelyingParty.name == name)).first() is not None:
                raise Conflict(f"a relying party named {name!r} exists", field="name")
            rp = RelyingParty(name=name, kinds=kinds, credential_sha256=hashlib.sha256(credential.encode()).hexdigest(),
                              active=True, created_at=self.clock.now())
            s.add(rp)
        return rp, credential

    def list_relying_parties(self) -> list[RelyingParty]:
        with self.store.session() as s:
            return list(s.scalars(select(RelyingParty).order_by(RelyingParty.id)).all())

    @audit.operation("rp.remove", "{name}")
    def remove_relying_party(self, name: str) -> None:
        with self.store.session() as s:
            rp = s.scalars(select(RelyingParty).where(RelyingParty.name == name)).first()
            if rp is None:
                raise NotFound(f"no relying party named {name!r}", field="name")
            rp.active = False
            seq = self._access_changed(s)
        self._published(seq)

    @audit.operation("token.revoke", "{label}")
    def revoke_token(self, label: str) -> int:
        """Revoke every live admin token labelled ``label``; returns how many.  Tokens are
        checked against the database on every admin request (never cached), so this holds from
        the next request in every process; the access sequence moves all the same, for any
        cache of them."""
        with self.store.session() as s:
            rows = s.scalars(select(ApiToken).where(ApiToken.label == label, ApiToken.revoked.is_(False))).all()
            if not rows:
                raise NotFound(f"no live admin token labelled {label!r}", field="label")
            for row in rows:
                row.revoked = True
            seq = self._access_changed(s)
        self._published(seq)
        return len(rows)
