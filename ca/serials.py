"""The authority's counters: which named :class:`jpki_mock.db.Counter` hands out which numbers,
and where each range starts."""

from __future__ import annotations

from jpki_mock.ca.signer import RESPONDER_SERIAL_START, RESPONDER_SERIALS
from jpki_mock.ca.status import REVOCATION_SEQ
from jpki_mock.vocab import Kind

#: end-entity serials look like running counters, one per CA kind [I]
SERIAL_START = 1_000_001
SERIALS: dict[Kind, str] = {Kind.SIGN: "serial_sign", Kind.AUTH: "serial_auth"}
#: the CA certificates' own serials (1, 2, ... across generations of both kinds)
CA_SERIALS = "serial_ca"
CA_SERIAL_START = 1
REVOCATION_SEQ_START = 1

#: every counter and its first value, created together when the CA is initialised
COUNTERS: dict[str, int] = {
    SERIALS[Kind.SIGN]: SERIAL_START,
    SERIALS[Kind.AUTH]: SERIAL_START,
    CA_SERIALS: CA_SERIAL_START,
    REVOCATION_SEQ: REVOCATION_SEQ_START,
    RESPONDER_SERIALS: RESPONDER_SERIAL_START,
}
