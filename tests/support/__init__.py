"""Helpers every test package shares (imported as ``tests.support``; no ``sys.path`` edits)."""

from tests.support.pki import (
    HOLDER,
    PASSPHRASE,
    ROOT,
    T0,
    VECTORS,
    fresh_pg_database,
    open_runtime,
    pg_url,
)
from tests.support.server import Server, free_port

__all__ = ["HOLDER", "PASSPHRASE", "ROOT", "T0", "VECTORS", "Server", "free_port", "fresh_pg_database",
           "open_runtime", "pg_url"]
