"""Wiring for one process: configuration, clock, store, keyring, status view and authority.

Part of the composition root: it imports every part's ``models`` module, so that the schema a
store creates has every table (each part declares its own tables on :class:`jpki_mock.db.Base`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Every part's ``models`` import declares its tables on jpki_mock.db.Base (F401: imported for that).
from jpki_mock import audit
from jpki_mock.access import Registry
from jpki_mock.ca import models as _ca_models  # noqa: F401
from jpki_mock.ca.authority import Authority
from jpki_mock.ca.signer import Keyring
from jpki_mock.ca.status import StatusReader
from jpki_mock.clock import Clock, SystemClock
from jpki_mock.config import Config, load_config
from jpki_mock.crl import models as _crl_models  # noqa: F401
from jpki_mock.db import Store
from jpki_mock.epoch import RevocationEpoch, close_listener
from jpki_mock.kit import models as _kit_models  # noqa: F401
from jpki_mock.kit.card import custody as card_custody
from jpki_mock.ocsp import models as _ocsp_models  # noqa: F401
from jpki_mock.private import private_dir


@dataclass
class Runtime:
    config: Config
    clock: Clock
    store: Store
    keyring: Keyring
    status: StatusReader
    authority: Authority
    epoch: RevocationEpoch
    registry: Registry
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def open(cls, config: Config | None = None, clock: Clock | None = None) -> Runtime:
        config = config or load_config()
        clock = clock or SystemClock()
        if config.time_travel:
            # Development only (config refuses it with shared = true): every "now" moves with the
            # operator offset and the per-request header (docs/time-travel.md).
            from jpki_mock.travel import TravellingClock, offset_path

            clock = TravellingClock(clock, offset_path(config.data_dir))
        private_dir(config.data_dir)
        store = Store(config.db_url)
        store.check_schema()
        keyring = Keyring(store, config, clock)
        epoch = RevocationEpoch(Path(config.data_dir) / "revocation.epoch")
        # The software card holds its holders' keys: the CA issues to them only through it.
        authority = Authority(config, store, clock, keyring, epoch, custody=card_custody)
        audit.bind(store, clock)  # a CLI command acting before it opened its runtime records here
        return cls(config, clock, store, keyring, StatusReader(store), authority, epoch, Registry(store, clock, epoch))

    def close(self) -> None:
        close_listener(self.store)
        self.store.dispose()
        self.epoch.close()
