"""Where answers come from: a chain of sources, as in Let's Encrypt Boulder's responder.

    filter (ocsp/filter.py) -> pre-signed (ocsp/presigned.py) -> live signer (ocsp/live.py)

Each is a :class:`~ocsp.answer.Source` with one method, ``answer(request, context)``; the HTTP
handler (ocsp/http.py) only decodes, asks the first, maps errors to OCSP statuses and sets the
caching headers.  Its hot path reads two parts directly: :meth:`Presigned.hit` (the pre-signed
bytes for exactly these request bytes) and :meth:`LiveSigner.nonced` (a nonced request shaped
like one answered before); :func:`build_source` wires them all and returns them by name.
"""

from __future__ import annotations

from collections.abc import Sequence

from jpki_mock.ca.signer import Keyring
from jpki_mock.ca.status import StatusReader
from jpki_mock.config import OcspConfig
from jpki_mock.epoch import REVOCATION_CHANNEL, RevocationEpoch, listener_for
from jpki_mock.ocsp.answer import Answer, Context, Source, Unauthorized, error_answer
from jpki_mock.ocsp.filter import FilterSource, Issuers
from jpki_mock.ocsp.live import LiveSigner
from jpki_mock.ocsp.outage import SequenceRead
from jpki_mock.ocsp.presigned import Presigned, PresignedSource


class Chain:
    """The wired sources of one process: ``source`` answers; the others are its parts, named
    for the hot path, the metrics and the tests."""

    __slots__ = ("issuers", "live", "presigned", "source")

    def __init__(self, source: Source, issuers: Issuers, presigned: Presigned, live: LiveSigner):
        self.source = source
        self.issuers = issuers
        self.presigned = presigned
        self.live = live

    def stats(self) -> dict[str, int]:
        return self.presigned.stats()

    def counters(self, hot_hits: int) -> dict[str, int]:
        """The pre-signed cache's counters since this process started; ``hot_hits``: the
        answers the HTTP hot path served from it (ocsp.stats.Counters.hits)."""
        cache = self.presigned
        return {"cache_hits": hot_hits + cache.hits, "cache_misses": cache.misses,
                "cache_evictions": cache.evictions}


def revocation_cell(cfg: OcspConfig, status: StatusReader, epoch: RevocationEpoch) -> Sequence[int]:
    """Item 0: the revocation sequence as this process should see it (see :func:`build_source`)."""
    if cfg.revocation_check == "epoch":
        return epoch.cell()
    if cfg.revocation_check == "database-push" and not status.store.is_sqlite:
        # Pushed: no database read per request, but a responder on another host may answer
        # "good" for the few milliseconds PostgreSQL takes to wake its listener after the
        # revoking transaction committed (docs/ocsp.md, "Propagation").
        return listener_for(status.store).cell(REVOCATION_CHANNEL)
    # Read on every request: once a revoke has returned, no later request here sees the old
    # sequence -- the guarantee "database" promises across hosts.
    return SequenceRead(status.current_seq, cfg.outage_grace_seconds, status.store.outage)


def build_source(cfg: OcspConfig, status: StatusReader, keyring: Keyring, epoch: RevocationEpoch) -> Chain:
    """The chain of one process.  ``epoch``: the host's revocation epoch, read per request with
    ``ocsp.revocation_check = "epoch"``; with ``"database"`` (a responder on another host than
    the revokers) the store's sequence, read on every request and carried through an outage for
    at most ``ocsp.outage_grace_seconds`` (ocsp/outage.py); with ``"database-push"`` on
    PostgreSQL the cell this process's listener raises as each revocation's NOTIFY arrives (no
    database read per request; see :func:`revocation_cell`)."""
    cell = revocation_cell(cfg, status, epoch)
    issuers = Issuers(status)
    presigned = Presigned(status, cell, budget=cfg.cache_mb << 20)
    live = LiveSigner(cfg, keyring, presigned, issuers)
    source = FilterSource(PresignedSource(presigned, live), issuers, cfg)
    return Chain(source, issuers, presigned, live)


__all__ = ["Answer", "Chain", "Context", "Source", "Unauthorized", "build_source", "error_answer"]
