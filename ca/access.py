"""Access control for registered relying parties, shared by the CRL and OCSP endpoints.

J-LIS answers only registered verifiers (JPKI_PROFILE.md section 1).  A relying party sends
its credential with any standard client as an HTTP header:

    Authorization: Bearer rp_...        (e.g. ``openssl ocsp -header Authorization "Bearer rp_..."``)
    X-JPKI-Relying-Party: rp_...        (for clients that reserve Authorization)

Lookups are cached per process for ``ttl`` seconds (the hot path must not hit the database
per request); a removed party stops being answered within that time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from .models import RelyingParty
from .store import Store


@dataclass(frozen=True, slots=True)
class Party:
    id: int
    name: str
    kinds: str  # sign | auth | both

    def may_query(self, kind: str) -> bool:
        return self.kinds == "both" or self.kinds == kind


def credential_from_environ(environ: dict) -> str | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return environ.get("HTTP_X_JPKI_RELYING_PARTY") or None


class AccessControl:
    def __init__(self, store: Store, ttl: float = 5.0):
        self.store = store
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Party | None]] = {}
        self._lock = threading.Lock()

    def party(self, credential: str | None) -> Party | None:
        """The active relying party holding ``credential``, or None."""
        if not credential or len(credential) > 256:
            return None
        digest = hashlib.sha256(credential.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.store.session() as s:
            row = s.scalars(select(RelyingParty).where(RelyingParty.credential_sha256 == digest,
                                                       RelyingParty.active.is_(True))).first()
            party = None if row is None else Party(row.id, row.name, row.kinds)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.ttl, party)
        return party

    def from_environ(self, environ: dict) -> Party | None:
        return self.party(credential_from_environ(environ))
