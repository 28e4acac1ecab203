"""The first source of the chain: which requests this responder answers at all (as Boulder's
filter source).

* Issuer: each CertID is matched by its (hash algorithm, issuerNameHash, issuerKeyHash) over
  every CA generation.  All generations of a kind share one DN, so the name hash alone cannot
  tell them apart (RFC 6960 section 4.1.1); an unknown issuer is ``unauthorized`` (RFC 5019
  section 2.2.3), and so are CertIDs of several issuers in one request: one
  BasicOCSPResponse has one signer, and a delegated responder is authorised for one CA
  generation only (RFC 6960 section 4.2.2.2).
* Access control: with ``ocsp.access_control`` only registered relying parties, for the kinds
  they may query (docs/sources.md: J-LIS answers only contracted platform operators).
* Nonce policy (RFC 9654): ``require`` refuses a request without one, ``ignore`` drops it (so
  the answer is the pre-signed one), ``echo`` keeps it.

What passes goes on with its issuer attached (``OcspRequest.issuer``) and, under ``ignore``,
without its nonce extension.
"""

from __future__ import annotations

import threading

from jpki_mock.ca.status import HASH_ALGORITHMS, Issuer, StatusReader
from jpki_mock.config import OcspConfig
from jpki_mock.ocsp.answer import Answer, Context, Source, Unauthorized
from jpki_mock.ocsp.request import CertID, MalformedRequest, OcspRequest


class Issuers:
    """Every CA generation by the (algorithm, name hash, key hash) a CertID names it with."""

    def __init__(self, status: StatusReader):
        self.status = status
        self._lock = threading.Lock()
        #: (algorithm, issuerNameHash, issuerKeyHash) -> Issuer; replaced whole on reload, so a
        #: reader holding the previous dict sees a consistent one
        self.by_key: dict[tuple[str | None, bytes, bytes], Issuer] = {}
        self.latest = 0
        self.load()

    def load(self) -> None:
        latest = self.status.latest_generation()
        index: dict[tuple[str | None, bytes, bytes], Issuer] = {}
        for issuer in self.status.issuers():
            for alg in HASH_ALGORITHMS:
                index[(alg, issuer.name_hash[alg], issuer.key_hash[alg])] = issuer
        self.by_key = index
        self.latest = latest

    def match(self, cid: CertID) -> Issuer | None:
        key = (cid.algorithm, cid.name_hash, cid.key_hash)
        issuer = self.by_key.get(key)
        if issuer is None and cid.algorithm is not None and self.status.latest_generation() != self.latest:
            # `ca rollover` added a generation since these were loaded (one indexed read per
            # unmatched CertID; the matched ones cost nothing).
            with self._lock:
                self.load()
            issuer = self.by_key.get(key)
        return issuer


class FilterSource:
    """Refuses what this responder does not answer; passes the rest to ``next``."""

    def __init__(self, next_source: Source, issuers: Issuers, cfg: OcspConfig):
        self.next = next_source
        self.issuers = issuers
        self.require_nonce = cfg.nonce_policy == "require"
        self.ignore_nonce = cfg.nonce_policy == "ignore"
        self.access_control = cfg.access_control

    def answer(self, request: OcspRequest, context: Context) -> Answer:
        if self.require_nonce and request.nonce is None:
            raise MalformedRequest("this responder requires a nonce (RFC 9654)", field="nonce",
                                   allowed="a nonce extension of 1-128 octets")
        issuer = None
        for cid in request.cert_ids:
            matched = self.issuers.match(cid)
            if matched is None:
                raise Unauthorized("no CA generation of this responder issued the CertID's certificate")
            if issuer is not None and matched.id != issuer.id:
                raise Unauthorized("CertIDs of several issuers in one request", matched.kind)
            issuer = matched
        assert issuer is not None  # the decoder refuses an empty requestList
        party = context.party
        if self.access_control and (party is None or not party.may_query(issuer.kind)):
            raise Unauthorized(f"not a relying party allowed to query {issuer.kind} certificates", issuer.kind)
        nonce_extension = None if self.ignore_nonce else request.nonce_extension
        return self.next.answer(OcspRequest(request.cert_ids, nonce_extension, request.nonce, issuer), context)


__all__ = ["FilterSource", "Issuers"]
