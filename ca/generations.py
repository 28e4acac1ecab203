"""CA generations: initialising the two CAs, key rollover, looking issuers up, revoking a CA.

Every generation of a kind keeps the same DN; older generations stay verifiable and revocable
after a rollover (their certificates stay in the store until they expire).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jpki_mock import audit
from jpki_mock.access import new_token
from jpki_mock.ca import keys, profile
from jpki_mock.ca.inputs import generation_of, kind_of, reason_code
from jpki_mock.ca.issuers import Issuer, choose, parse_ref
from jpki_mock.ca.models import CAGeneration
from jpki_mock.ca.serials import CA_SERIAL_START, CA_SERIALS, COUNTERS
from jpki_mock.ca.signer import Keyring
from jpki_mock.ca.work import Begin
from jpki_mock.clock import Clock
from jpki_mock.config import Config
from jpki_mock.db import Counter, Store, next_values
from jpki_mock.errors import AlreadyRevoked, Conflict, InvalidInput, UnknownIssuer
from jpki_mock.vocab import KINDS, Kind, Reason

#: how callers name an issuer: a kind (its current generation) or kind-gN


class Generations:
    def __init__(self, config: Config, store: Store, clock: Clock, keyring: Keyring, begin: Begin):
        self.config = config
        self.store = store
        self.clock = clock
        self.keyring = keyring
        self.begin = begin
        self._issuers: dict[int, Issuer] | None = None

    @audit.operation("ca.init", lambda a: a["hierarchy"] or a["self"].config.hierarchy)
    def init(self, hierarchy: str | None = None) -> str:
        """Create generation 1 of both CAs and the first admin token; returns the token (shown once)."""
        hierarchy = hierarchy or self.config.hierarchy
        self.store.create_schema()
        if self.store.is_initialised():
            raise Conflict("this data directory already has a CA", field="data_dir",
                           allowed="use `jpki-mock ca rollover` for a new key generation")
        with self.begin() as work:
            s = work.session
            # Every counter exists from the start: creating one on first use races between the
            # responder processes that issue their delegated certificates at the same moment.
            for name, start in COUNTERS.items():
                s.add(Counter(name=name, value=start - 1))
            s.flush()
            for kind in KINDS:
                self._new_generation(s, kind, hierarchy, 1)
            token = new_token(s, "init", self.clock.now())
        self._issuers = None
        return token

    def _new_generation(self, s: Session, kind: Kind, hierarchy: str, generation: int) -> CAGeneration:
        # A new root is self-signed with its own, just generated key: no stored CA key is used.
        key = keys.generate_rsa()
        serial = next_values(s, CA_SERIALS, start=CA_SERIAL_START)
        cert = profile.build_ca_certificate(kind, hierarchy, key, serial, self.clock.now())
        row = CAGeneration(
            kind=kind, generation=generation, hierarchy=hierarchy, serial=serial,
            cert_der=cert.public_bytes(serialization.Encoding.DER),
            key_pkcs8=keys.encrypt_key(key, self.config.key_passphrase),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, created_at=self.clock.now(),
        )
        s.add(row)
        s.flush()
        return row

    @audit.operation("ca.rollover", "{kind}")
    def rollover(self, kind: Any) -> Issuer:
        """A new key generation with the same DN; older generations stay verifiable and revocable."""
        kind = kind_of(kind)
        self.store.require_initialised()
        with self.begin() as work:
            latest = work.session.scalars(
                select(CAGeneration).where(CAGeneration.kind == kind).order_by(CAGeneration.generation.desc()).limit(1)
            ).one()
            row = self._new_generation(work.session, kind, latest.hierarchy, latest.generation + 1)
            issuer = Issuer.from_row(row)
        self._issuers = None
        self.keyring.forget()
        return issuer

    def issuers(self) -> list[Issuer]:
        if self._issuers is None:
            with self.store.session() as s:
                rows = s.scalars(select(CAGeneration).order_by(CAGeneration.kind, CAGeneration.generation)).all()
                self._issuers = {r.id: Issuer.from_row(r) for r in rows}
        return list(self._issuers.values())

    def issuer(self, kind: Any, generation: int | None = None) -> Issuer:
        """The named generation, or the current one (highest, unrevoked) when ``generation`` is None."""
        kind = kind_of(kind)
        issuers = self.issuers()
        if not any(i.kind == kind for i in issuers):
            self.store.require_initialised()
        return choose(issuers, kind, generation)

    def issuer_by_id(self, ca_id: int) -> Issuer:
        for i in self.issuers():
            if i.id == ca_id:
                return i
        self._issuers = None  # another process may have rolled over since we cached
        for i in self.issuers():
            if i.id == ca_id:
                return i
        raise UnknownIssuer(f"no CA generation with id {ca_id}")

    def parse_issuer_ref(self, ref: Any) -> tuple[Kind, int | None]:
        """``sign`` / ``auth`` (any generation) or ``sign-g2`` (that generation, which must exist)."""
        kind, generation = parse_ref(ref)
        if generation is not None:
            self.issuer(kind, generation)
        return kind, generation

    @audit.operation("ca.revoke", "{kind}-g{generation} {reason}")
    def revoke_ca(self, kind: Any, generation: Any, reason: Any, confirm: Any) -> Issuer:
        """Revoke a CA generation's certificate: it goes on that kind's ARL.

        Final and felt by every relying party (RFC 5280 section 5.3.1 lets only a hold be undone,
        and JPKI never does that either), so every edge (API, CLI, console) passes
        the reason explicitly and ``confirm`` naming the generation (``auth-g1``): a request that
        forgot a field, or named another CA, changes nothing."""
        if reason is None:
            raise InvalidInput("is required to revoke a CA", field="reason", allowed=[r.rfc_name for r in Reason])
        code = reason_code(reason)
        issuer = self.issuer(kind, generation_of(generation))
        if confirm != issuer.label:
            said = "is required" if confirm is None else f"{confirm!r} does not name the CA being revoked"
            raise InvalidInput(f"{said}: revoking {issuer.label} needs confirm={issuer.label!r}", field="confirm",
                               allowed=[issuer.label])
        if issuer.revoked_at is not None:
            raise AlreadyRevoked(f"{issuer.label} is already revoked", field="generation")
        with self.begin() as work:
            work.session.execute(update(CAGeneration).where(CAGeneration.id == issuer.id)
                                 .values(revoked_at=self.clock.now(), reason=code))
        self._issuers = None
        return self.issuer_by_id(issuer.id)
