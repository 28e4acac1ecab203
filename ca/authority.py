"""The authority as one object: the composition of its concerns, for callers that want one place
(the runtime's ``rt.authority``).  The logic lives in the concern modules:

- :mod:`ca.generations`: CA generations (init, rollover, issuer lookup, revoking a CA)
- :mod:`ca.holders`: card holders
- :mod:`ca.issuance`: issuing end-entity certificates
- :mod:`ca.certificates`: finding and listing them
- :mod:`ca.revocation`: revoking them, and the revocation sequence
- :mod:`ca.events`: resident-registry and card events

Every operation validates its input completely before writing anything and is one unit of
work (:mod:`ca.work`): one transaction, after whose commit the revocation sequence is
published, so bad input or a failure midway changes nothing, and once a revoke call has
returned no responder answers "good" for that certificate.
"""

from __future__ import annotations

from jpki_mock.ca import profile
from jpki_mock.ca.certificates import Certificates
from jpki_mock.ca.events import Events
from jpki_mock.ca.generations import Generations
from jpki_mock.ca.holders import Holders
from jpki_mock.ca.issuance import MIN_SIGN_AGE, Issuance, Issued, KeyCustody, der_to_pem
from jpki_mock.ca.revocation import Revocation
from jpki_mock.ca.signer import Keyring
from jpki_mock.ca.work import UnitOfWork
from jpki_mock.clock import Clock
from jpki_mock.config import Config
from jpki_mock.db import Store
from jpki_mock.epoch import RevocationEpoch

__all__ = ["MIN_SIGN_AGE", "Authority", "Issued", "KeyCustody", "der_to_pem"]


class Authority:
    def __init__(self, config: Config, store: Store, clock: Clock, keyring: Keyring,
                 epoch: RevocationEpoch | None = None, custody: KeyCustody | None = None):
        self.config = config
        self.store = store
        self.clock = clock
        self.keyring = keyring
        self.epoch = epoch
        begin = self.unit_of_work
        self.generations = Generations(config, store, clock, keyring, begin)
        self.holders = Holders(store, clock, begin)
        self.certificates = Certificates(store, clock, self.generations)
        self.revocation = Revocation(clock, self.certificates, begin)
        self.issuance = Issuance(config, clock, keyring, self.generations, self.holders, self.revocation, begin,
                                 custody)
        self.events = Events(clock, self.holders, self.issuance, self.revocation, begin)

        # The operations callers use, each from the concern that holds it.
        g, h, c, r, i = self.generations, self.holders, self.certificates, self.revocation, self.issuance
        self.init, self.rollover, self.revoke_ca = g.init, g.rollover, g.revoke_ca
        self.issuers, self.issuer, self.issuer_by_id = g.issuers, g.issuer, g.issuer_by_id
        self.parse_issuer_ref = g.parse_issuer_ref
        self.create_holder, self.get_holder, self.list_holders = h.create_holder, h.get_holder, h.list_holders
        self.default_card_expiry = h.default_card_expiry
        self.issue, self.issue_keys, self.validity_for = i.issue, i.issue_keys, i.validity_for
        self.get_certificate, self.list_certificates = c.get_certificate, c.list_certificates
        self.expiring, self.count_expiring = c.expiring, c.count_expiring
        self.der_of = c.der_of
        self.revoke, self.release_hold = r.revoke, r.release_hold
        self.event, self.renew_keys = self.events.event, self.events.renew_keys

    def unit_of_work(self) -> UnitOfWork:
        """A transaction for one operation; revocations in it are published after its commit."""
        return UnitOfWork(self.store, self.epoch)

    @property
    def ee_profile(self) -> profile.EEProfile:
        return self.issuance.ee_profile
