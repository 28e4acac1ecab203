"""Where answers come from: a chain of sources, as in Let's Encrypt Boulder's responder.

    filter (ocsp/filter.py) -> pre-signed (ocsp/presigned.py) -> live signer (ocsp/live.py)

Each is a :class:`~ocsp.answer.Source` with one method, ``answer(request, context)``; the HTTP
handler (ocsp/http.py) only decodes, asks the first, maps errors to OCSP statuses and sets the
caching headers.  Its hot path reads two parts directly: :meth:`Presigned.hit` (the pre-signed
bytes for exactly these request bytes) and :meth:`LiveSigner.nonced` (a nonced request shaped
like one answered before); :func:`build_source` wires them all and returns them by name.
"""

from __future__ import annotations

from jpki_mock.config import OcspConfig
from jpki_mock.epoch import RevocationEpoch
from jpki_mock.ca.signer import Keyring
from jpki_mock.ca.status import StatusReader

from jpki_mock.ocsp.answer import Answer, Context, Source, Unauthorized, error_answer
from jpki_mock.ocsp.filter import FilterSource, Issuers
from jpki_mock.ocsp.live import LiveSigner
from jpki_mock.ocsp.outage import SequenceRead
from jpki_mock.ocsp.presigned import Presigned, PresignedSource


class Chain:
    """The wired sources of one process: ``source`` answers; the others are its parts, named
    for the hot path, the metrics and the tests."""

    __slots__ = ("source", "issuers", "presigned", "live")

    def __init__(self, source: Source, issuers: Issuers, presigned: Presigned, live: LiveSigner):
        self.source = source
        self.issuers = issuers
        self.presigned = presigned
        self.live = live

    def stats(self) -> dict[str, int]:
        return self.presigned.stats()


def build_source(cfg: OcspConfig, status: StatusReader, keyring: Keyring, epoch: RevocationEpoch) -> Chain:
    """The chain of one process.  ``epoch``: the host's revocation epoch, read per request with
    ``ocsp.revocation_check = "epoch"``; with ``"database"`` the store's sequence is read instead
    (a responder on another host than the revokers), carried through an outage for at most
    ``ocsp.outage_grace_seconds`` (ocsp/outage.py)."""
    cell = epoch.cell() if cfg.revocation_check == "epoch" else \
        SequenceRead(status.current_seq, cfg.outage_grace_seconds, status.store.outage)
    issuers = Issuers(status)
    presigned = Presigned(status, cell)
    live = LiveSigner(cfg, keyring, presigned, issuers)
    source = FilterSource(PresignedSource(presigned, live), issuers, cfg)
    return Chain(source, issuers, presigned, live)


__all__ = ["Answer", "Chain", "Context", "Source", "Unauthorized", "build_source", "error_answer"]
