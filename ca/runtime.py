"""Wiring for one process: configuration, clock, store, keyring, status view and authority."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .authority import Authority
from .clock import Clock, SystemClock
from .config import Config, load_config
from .epoch import RevocationEpoch
from .signer import Keyring
from .status import StatusReader
from .store import Store


@dataclass
class Runtime:
    config: Config
    clock: Clock
    store: Store
    keyring: Keyring
    status: StatusReader
    authority: Authority
    epoch: RevocationEpoch
    extras: dict = field(default_factory=dict)

    @classmethod
    def open(cls, config: Config | None = None, clock: Clock | None = None) -> "Runtime":
        config = config or load_config()
        clock = clock or SystemClock()
        if config.time_travel:
            # Development only (config refuses it with shared = true): every "now" moves with the
            # operator offset and the per-request header (docs/time-travel.md).
            from .timetravel import TravellingClock, offset_path

            clock = TravellingClock(clock, offset_path(config.data_dir))
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        store = Store(config.db_url)
        keyring = Keyring(store, config, clock)
        epoch = RevocationEpoch(Path(config.data_dir) / "revocation.epoch")
        authority = Authority(config, store, clock, keyring, epoch)
        return cls(config, clock, store, keyring, StatusReader(store), authority, epoch)

    def close(self) -> None:
        self.store.dispose()
        self.epoch.close()
