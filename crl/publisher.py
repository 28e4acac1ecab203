"""Build, check and publish CRLs atomically, with an archive by number.

Publishing one stream (see :class:`Stream`):

1. take the stream scope's lock (several processes may publish: the server's schedule, the
   CLI, the admin API) and :meth:`Publisher.recover` the stream from any earlier crash;
2. reserve the next cRLNumber of the scope in the database and commit (a ``counters`` row,
   :func:`jpki_mock.db.next_values`): nothing is ever published under a number the store has
   not handed out, so a crash can skip a number but never reuse one (RFC 5280 section 5.2.3);
3. stream the revoked entries into a temporary file next to the served one (crl.writer);
4. check it with an independent parser (pyca/cryptography): every entry parses, the
   signature verifies against the issuing generation's key, issuer, AKI, cRLNumber greater
   than the last one, times, scope extensions; a failure deletes the temporary file and
   raises :class:`jpki_mock.errors.PublishError` saying why;
5. hard-link it into the archive, fsync, ``rename`` it over the served file (atomic on
   POSIX: readers see the old CRL or the new one, never a partial one), fsync the directory;
6. record it in ``crl_published``.

A crash before step 5's rename leaves the previous CRL served; recovery deletes the temporary
file and an archive link without a record.  A crash between the rename and step 6 leaves a
served CRL newer than the store's latest record; recovery records it (see :meth:`Publisher.recover`).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TypedDict

from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jpki_mock import audit, der, municipalities, names, urls
from jpki_mock.ca.signer import Keyring
from jpki_mock.ca.status import Issuer, StatusReader
from jpki_mock.clock import Clock
from jpki_mock.config import Config
from jpki_mock.crl import extensions
from jpki_mock.crl.models import PublishedCrl
from jpki_mock.crl.prefetch import prefetched
from jpki_mock.crl.writer import CrlHeader, write_crl
from jpki_mock.db import Counter, Store, next_values
from jpki_mock.errors import Conflict, InvalidInput, MalformedData, NotFound, PublishError

log = logging.getLogger("jpki_mock.crl")

FULL, ARL = "full", "arl"

#: ``.tmp-<stream name>-<number>-<pid>.crl``: a CRL being written, or left by a crash.
_TMP = re.compile(r"^\.tmp-(?P<name>[0-9a-z-]+)-(?P<number>[0-9]+)-(?P<pid>[0-9]+)\.crl$")


class Services(Protocol):
    """What :meth:`CrlDeps.of` reads: the composition root's runtime has these fields."""

    config: Config
    clock: Clock
    store: Store
    status: StatusReader
    keyring: Keyring


@dataclass(frozen=True)
class CrlDeps:
    """Everything CRL publication and distribution use: settings, time, the published-CRL index
    (``store``), certificate status and issuers (read-only), and CA signers (no keys)."""

    config: Config
    clock: Clock
    store: Store
    status: StatusReader
    keyring: Keyring

    @classmethod
    def of(cls, services: Services) -> CrlDeps:
        return cls(services.config, services.clock, services.store, services.status, services.keyring)


@dataclass(frozen=True)
class Stream:
    """One sequence of CRLs: a CA generation x a scope (full / arl / municipality code) x complete or delta."""

    issuer: Issuer
    scope: str
    delta: bool = False

    @property
    def name(self) -> str:
        return f"{self.scope}-delta" if self.delta else self.scope

    @property
    def label(self) -> str:
        return f"{self.issuer.label}/{self.name}"

    @property
    def municipality(self) -> str | None:
        return None if self.scope in (FULL, ARL) else self.scope

    def path(self, fmt: str = "crl") -> str:
        return urls.crl_path(self.issuer.kind, self.issuer.generation, self.scope, delta=self.delta, fmt=fmt)

    def base(self) -> Stream:
        return Stream(self.issuer, self.scope, False)


#: a stream or published CRL as the admin API and ``crl list --json`` show it.
JsonRecord = dict[str, str | int | None]


class _Scope(TypedDict, total=False):
    """The scope arguments of :func:`extensions.crl_extensions` (its issuingDistributionPoint)."""

    idp_names: list[ax509.GeneralName]
    only_user: bool
    only_ca: bool


def record_json(rec: PublishedCrl, stream: Stream, base_url: str) -> JsonRecord:
    def iso(dt: datetime) -> str:
        return dt.isoformat().replace("+00:00", "Z")

    return {
        "stream": stream.label, "issuer": stream.issuer.label, "scope": stream.scope, "delta": stream.delta,
        "number": rec.number, "base_number": rec.base_number, "this_update": iso(rec.this_update),
        "next_update": iso(rec.next_update), "entries": rec.entries, "size": rec.size, "sha256": rec.sha256,
        "url": base_url + stream.path(), "pem_url": base_url + stream.path("pem"),
    }


class Publisher:
    def __init__(self, deps: CrlDeps):
        self.deps = deps
        self.config = deps.config
        self.clock = deps.clock
        self.store = deps.store
        self.status = deps.status
        self.keyring = deps.keyring
        self.root = Path(deps.config.data_dir) / "crl"

    # ------------------------------------------------------------------ files
    def current_file(self, stream: Stream) -> Path:
        return self.root / stream.issuer.kind / f"g{stream.issuer.generation}" / f"{stream.name}.crl"

    def archive_dir(self, stream: Stream) -> Path:
        return self.root / stream.issuer.kind / f"g{stream.issuer.generation}" / "archive" / stream.name

    def archive_file(self, stream: Stream, number: int) -> Path:
        return self.archive_dir(stream) / f"{number}.crl"

    # ------------------------------------------------------------------ which streams
    def streams(self, issuers: Iterable[Issuer] | None = None, scopes: Iterable[str] | None = None,
                delta: bool | None = None) -> list[Stream]:
        """Every stream (complete before its delta, so a new base gets a fresh delta right after)."""
        deltas = self.config.crl.delta if delta is None else delta
        out = []
        for issuer in issuers if issuers is not None else self.status.issuers():
            for scope in scopes if scopes is not None else self.scopes(issuer):
                out.append(Stream(issuer, scope))
                if deltas and scope != ARL:  # CA certificates change too rarely for a delta ARL
                    out.append(Stream(issuer, scope, True))
        return out

    def scopes(self, issuer: Issuer) -> list[str]:
        """``full``, ``arl`` and the partitions in use: every municipality (of about 1,900) in which
        this generation issued a certificate, and every partition it published before, whose CRL
        must stay fresh while relying parties may fetch it (RFC 5280 section 5.1.2.5).  A partition
        no certificate names needs no CRL; ``crl publish --partition CODE`` makes one all the same."""
        in_use = set(self.status.municipalities_of(issuer.id))
        with self.store.session() as s:
            in_use.update(s.scalars(select(PublishedCrl.scope).where(PublishedCrl.ca_id == issuer.id).distinct()))
        return [FULL, ARL, *sorted(in_use - {FULL, ARL})]

    def select(self, ca: str | None = None, partition: str | None = None, delta: bool | None = None) -> list[Stream]:
        """Streams named by the CLI / admin API: ``ca`` sign|auth|sign-g2 (default: all generations of
        both), ``partition`` full|arl|<municipality code> (default: all)."""
        issuers = self.status.issuers()
        if ca is not None:
            kind, generation = self.status.parse_issuer_ref(ca)
            issuers = [i for i in issuers if i.kind == kind and (generation is None or i.generation == generation)]
        scopes = None
        if partition is not None:
            scopes = [check_scope(partition)]
        if delta and not self.config.crl.delta:
            raise InvalidInput("delta CRLs are not enabled", field="delta", allowed="set crl.delta = true "
                               "(JPKI_MOCK_CRL_DELTA=1) to publish delta CRLs")
        if delta and partition == ARL:
            raise InvalidInput("there is no delta ARL", field="partition", allowed=[FULL, "<municipality code>"])
        streams = self.streams(issuers, scopes)
        if delta is not None:
            streams = [s for s in streams if s.delta == delta]
        return streams

    def find(self, kind: str, generation: int, name: str, issuers: list[Issuer] | None = None) -> Stream:
        """The stream behind ``/crl/{kind}/g{generation}/{name}.crl``; NotFound names what is wrong."""
        for issuer in issuers if issuers is not None else self.status.issuers():
            if issuer.kind == kind and issuer.generation == generation:
                break
        else:
            raise NotFound(f"no {kind} CA generation {generation}", field="generation")
        delta = name.endswith("-delta")
        scope = name[:-6] if delta else name
        if scope not in (FULL, ARL) and not municipalities.is_known(scope):
            raise NotFound(f"no CRL partition {scope!r}", field="partition", allowed=_partitions_allowed(scope))
        if delta and (scope == ARL or not self.config.crl.delta):
            raise NotFound(f"no delta CRL for {scope!r}" + ("" if self.config.crl.delta else " (delta CRLs are off)"),
                           field="partition")
        return Stream(issuer, scope, delta)

    # ------------------------------------------------------------------ state
    def latest(self, stream: Stream) -> PublishedCrl | None:
        with self.store.session() as s:
            return s.scalars(
                select(PublishedCrl).where(PublishedCrl.ca_id == stream.issuer.id, PublishedCrl.scope == stream.scope,
                                           PublishedCrl.delta == stream.delta)
                .order_by(PublishedCrl.number.desc()).limit(1)
            ).first()

    def records(self, stream: Stream) -> list[PublishedCrl]:
        with self.store.session() as s:
            return list(s.scalars(
                select(PublishedCrl).where(PublishedCrl.ca_id == stream.issuer.id, PublishedCrl.scope == stream.scope,
                                           PublishedCrl.delta == stream.delta)
                .order_by(PublishedCrl.number)
            ).all())

    @staticmethod
    def _last_number(stream: Stream, s: Session) -> int:
        return int(s.scalar(select(func.max(PublishedCrl.number)).where(
            PublishedCrl.ca_id == stream.issuer.id, PublishedCrl.scope == stream.scope)) or 0)

    def due(self, stream: Stream, now: datetime) -> bool:
        """Never published, its period has passed, or (delta) a newer complete CRL exists."""
        last = self.latest(stream)
        if last is None:
            return not stream.delta or self.latest(stream.base()) is not None
        period = self.config.crl.delta_period_seconds if stream.delta else self.config.crl.period_seconds
        if now >= issued_at(last, self.config.crl.backdate_seconds) + timedelta(seconds=period):
            return True
        if stream.delta:
            base = self.latest(stream.base())
            return base is not None and base.number != last.base_number
        return False

    # ------------------------------------------------------------------ building
    def _idp(self, stream: Stream) -> _Scope:
        issuer = stream.issuer
        if stream.scope == FULL:
            return {}  # a complete CRL for every end-entity certificate of the generation: no IDP
        if stream.scope == ARL:
            # The roots' CRLDP is the CA's own DN, no URI (docs/sources.md section 2, [C]); the ARL
            # holds CA certificates only.
            return {"idp_names": [extensions.directory_name(issuer.name_der)], "only_ca": True}
        muni = municipalities.get(stream.scope)
        # Exactly the DistributionPoint written by ca/profile.py ee_extensions for this municipality.
        dp = [extensions.directory_name(names.crldp_name(issuer.kind, muni, issuer.hierarchy).public_bytes())]
        if not self.config.faithful:
            dp.append(extensions.uri(urls.crl_url(self.config.public_url, issuer.kind, issuer.generation, muni.code)))
        return {"idp_names": dp, "only_user": True}

    def _rows(self, stream: Stream, now: datetime, base: PublishedCrl | None) -> Iterator[tuple[int, int, int]]:
        status = self.status
        if stream.scope == ARL:
            for e in status.revoked_issuers(stream.issuer.kind):
                yield e.serial, int(e.revoked_at.timestamp()), e.reason
            return
        if base is not None:
            yield from status.revoked_rows(stream.issuer.id, municipality=stream.municipality,
                                           changed_after_seq=base.revocation_seq)
            return
        yield from status.revoked_rows(stream.issuer.id, municipality=stream.municipality,
                                       expired_before=self.removal_cutoff(now))

    def removal_cutoff(self, now: datetime) -> datetime:
        """Entries of certificates whose notAfter is before this leave the CRL: by then each has appeared
        on at least one regularly scheduled CRL issued after it expired (RFC 5280 section 5.1.2.6)."""
        return now - timedelta(seconds=self.config.crl.period_seconds + self.config.crl.grace_seconds)

    @contextmanager
    def _lock(self, stream: Stream) -> Iterator[None]:
        path = self.root / ".locks" / f"{stream.issuer.id}-{stream.scope}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def publish(self, stream: Stream) -> PublishedCrl:
        """Build, check and atomically publish the next CRL of ``stream``."""
        with self._lock(stream):
            for same_scope in _scope_streams(stream):
                self._recover_locked(same_scope)
            return self._publish_locked(stream)

    def first_publication(self, stream: Stream) -> bool:
        """Publish ``stream``'s first CRL unless it has one; True when this call published it.

        A municipality's partition must be fetchable from the moment a certificate names it in
        its CRL distribution point (RFC 5280 section 4.2.1.13), not from the next daily run, and
        of about 1,900 partitions only those in use are published on schedule: the HTTP server
        calls this for a partition nobody has published yet (docs/crl.md).  Under the stream's
        lock, so workers asking at once publish it once."""
        if stream.delta:
            self.first_publication(stream.base())  # a delta names the complete CRL it extends
        with self._lock(stream):
            for same_scope in _scope_streams(stream):
                self._recover_locked(same_scope)
            if self.current_file(stream).exists():
                return False
            self._publish_locked(stream)
            return True

    # ------------------------------------------------------------------ numbers
    @staticmethod
    def _counter(stream: Stream) -> str:
        return f"crl-{stream.issuer.id}-{stream.scope}"  # one sequence per scope: complete and delta share it

    def _raise_counter(self, s: Session, stream: Stream, floor: int) -> None:
        """Make the scope's counter at least ``floor`` (inside the caller's transaction): a number
        found on disk or in the store is never handed out again.  Data published before numbers
        were reserved has no counter yet; it starts from what was published.  The UPDATE comes
        first so that SQLite takes its write lock at once (a read first could not upgrade)."""
        name = self._counter(stream)
        done = s.execute(update(Counter).where(Counter.name == name, Counter.value < floor).values(value=floor))
        # An UPDATE without RETURNING always yields a CursorResult; Session.execute is typed for SELECTs.
        assert isinstance(done, CursorResult)
        if done.rowcount == 0 and s.scalar(select(Counter.value).where(Counter.name == name)) is None:
            s.add(Counter(name=name, value=floor))
            s.flush()

    def _reserve(self, stream: Stream) -> tuple[int, int]:
        """Reserve and commit the scope's next cRLNumber before anything is written under it;
        returns (number, highest number recorded as published)."""
        for attempt in range(3):
            try:
                with self.store.session() as s:
                    number = next_values(s, self._counter(stream), start=1)  # row-locked until commit
                    last = self._last_number(stream, s)
                    if number <= last:  # a scope published before numbers were reserved
                        s.execute(update(Counter).where(Counter.name == self._counter(stream)).values(value=last + 1))
                        number = last + 1
                    return number, last
            except IntegrityError:  # another host created the counter row first: read it again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ recovery
    def recover(self, streams: Iterable[Stream] | None = None) -> None:
        """Make every stream's files and records agree after a crash (run by the server's
        schedule at start; :meth:`publish` runs it for its own stream first).  Delta streams are
        included even when ``crl.delta`` is off: their files may remain from when it was on."""
        for stream in streams if streams is not None else self.streams(delta=True):
            with self._lock(stream):
                self._recover_locked(stream)

    def _recover_locked(self, stream: Stream) -> None:
        """Sweep temporary files; reconcile the served file, the archive and the store.

        The served file is renamed into place before its record is committed, so a crash can
        leave it one CRL ahead of the store.  It was fully written, fsynced and checked (step 4)
        before the rename and relying parties may already have fetched it, so it is *recorded*,
        not rolled back to the previous CRL: RFC 5280 section 5.2.3 requires cRLNumber to
        increase for every CRL of the scope, and putting number N-1 back after N was served
        would make the served number go backwards, while the next publish could not tell N
        was taken.  Its number was reserved before it was written, so recording it hands out
        nothing twice.  Anything else that disagrees with the store (a file that does not
        parse or verify, or an older one) is replaced by the archived CRL of the latest record,
        and an archive link made before a crash stopped the rename is deleted: that CRL was
        never served as current and its number stays used up.  A served file that verifies but
        has no archive to replace it with stays served (a verifiable older CRL beats none)."""
        current = self.current_file(stream)
        if not current.parent.is_dir():
            return
        for path in current.parent.iterdir():
            m = _TMP.match(path.name)
            if m and m["name"] == stream.name:
                path.unlink(missing_ok=True)
        latest = self.latest(stream)
        served = current.exists()
        if served and (latest is None or _sha256_file(current) != latest.sha256):
            data = current.read_bytes()
            found = self._inspect(data, stream)
            if found is not None and (latest is None or found.number > latest.number) \
                    and not self._taken(stream, found.number):
                latest = self._record_recovered(stream, found, data)
                log.warning("recovered %s number %d: served but not recorded before a crash", stream.label,
                            found.number)
            else:
                if found is not None:
                    with self.store.session() as s:
                        self._raise_counter(s, stream, found.number)
                self._restore(stream, latest, valid=found is not None)
        elif not served and latest is not None:
            self._restore(stream, latest, valid=False)
        if latest is not None:
            archived = self.archive_file(stream, latest.number)
            if not archived.exists() and current.exists() and _sha256_file(current) == latest.sha256:
                archived.parent.mkdir(parents=True, exist_ok=True)
                os.link(current, archived)
                _fsync_dir(archived.parent)
        self._drop_unrecorded_archives(stream, latest.number if latest is not None else 0)

    def _taken(self, stream: Stream, number: int) -> bool:
        """Whether a CRL of the scope (complete or delta) is recorded under ``number``."""
        with self.store.session() as s:
            return s.scalar(select(PublishedCrl.id).where(
                PublishedCrl.ca_id == stream.issuer.id, PublishedCrl.scope == stream.scope,
                PublishedCrl.number == number).limit(1)) is not None

    def _inspect(self, data: bytes, stream: Stream) -> _Found | None:
        """The served file's number and fields when it is a valid CRL of ``stream``, else None."""
        try:
            crl = x509.load_der_x509_crl(data)
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            try:
                delta_base = crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
            except x509.ExtensionNotFound:
                delta_base = None
            if (delta_base is not None) != stream.delta:
                return None
            next_update = crl.next_update_utc
            if next_update is None:  # every CRL we publish has one (RFC 5280 section 5.1.2.5)
                raise PublishError("the CRL has no nextUpdate", field="next_update")
            check_crl(data, issuer=stream.issuer, number=number, last_number=0, this_update=crl.last_update_utc,
                      next_update=next_update, entries=len(crl), delta_base=delta_base,
                      scoped=stream.scope != FULL)
        except (ValueError, x509.ExtensionNotFound, PublishError) as exc:
            log.error("%s: the served CRL is not a valid CRL of this stream: %s", stream.label, exc)
            return None
        return _Found(number, delta_base, crl.last_update_utc, next_update, len(crl))

    def _record_recovered(self, stream: Stream, found: _Found, data: bytes) -> PublishedCrl:
        with self.store.session() as s:
            self._raise_counter(s, stream, found.number)
            # The revocation sequence the crashed publisher read is lost; the scope's highest
            # recorded one is no later than it, so a delta built on this CRL lists every change
            # it must (and at worst repeats some entries this CRL already has).
            seq = s.scalar(select(func.max(PublishedCrl.revocation_seq)).where(
                PublishedCrl.ca_id == stream.issuer.id, PublishedCrl.scope == stream.scope)) or 0
            rec = PublishedCrl(
                ca_id=stream.issuer.id, scope=stream.scope, delta=stream.delta, number=found.number,
                base_number=found.delta_base, this_update=found.this_update, next_update=found.next_update,
                revocation_seq=seq, entries=found.entries, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                published_at=self.clock.now(),
            )
            s.add(rec)
        return rec

    def _restore(self, stream: Stream, latest: PublishedCrl | None, valid: bool) -> None:
        """Serve the archived CRL of the latest record again (linked through a temporary file and
        renamed, like a publication).  Without one, a served file that is not valid is removed."""
        current = self.current_file(stream)
        archived = self.archive_file(stream, latest.number) if latest is not None else None
        if latest is not None and archived is not None and archived.exists() \
                and _sha256_file(archived) == latest.sha256:
            tmp = current.parent / f".tmp-{stream.name}-{latest.number}-{os.getpid()}.crl"
            tmp.unlink(missing_ok=True)
            os.link(archived, tmp)
            os.replace(tmp, current)
            _fsync_dir(current.parent)
            log.warning("%s: serving number %d again (the served file disagreed with the store)", stream.label,
                        latest.number)
        elif not valid and current.exists():
            current.unlink()
            _fsync_dir(current.parent)
            log.error("%s: removed a served file that is not a valid CRL; publish to serve one", stream.label)

    def _drop_unrecorded_archives(self, stream: Stream, latest_number: int) -> None:
        folder = self.archive_dir(stream)
        if not folder.is_dir():
            return
        orphans = [p for p in folder.iterdir()
                   if p.suffix == ".crl" and p.stem.isdigit() and int(p.stem) > latest_number]
        if not orphans:
            return
        with self.store.session() as s:
            self._raise_counter(s, stream, max(int(p.stem) for p in orphans))
        for p in orphans:
            p.unlink(missing_ok=True)
        _fsync_dir(folder)

    # ------------------------------------------------------------------ publishing
    def _publish_locked(self, stream: Stream) -> PublishedCrl:
        issuer = stream.issuer
        now = self.clock.now()
        base = None
        if stream.delta:
            base = self.latest(stream.base())
            if base is None:
                raise Conflict(f"{stream.label}: no complete CRL to build a delta on yet",
                               field="partition", allowed=f"publish {stream.base().label} first")
        number, last_number = self._reserve(stream)
        seq = self.status.current_seq()  # read before the entries: later changes go to the next delta
        crl_cfg = self.config.crl
        period = crl_cfg.delta_period_seconds if stream.delta else crl_cfg.period_seconds
        # nextUpdate counts from the issue time, not the backdated thisUpdate: backdating must
        # not shorten the time until the next CRL.
        next_update = now + timedelta(seconds=period + crl_cfg.grace_seconds)
        freshest = None
        if crl_cfg.delta and not stream.delta and stream.scope != ARL:
            freshest = [extensions.uri(self.config.public_url + Stream(issuer, stream.scope, True).path())]
        exts = extensions.crl_extensions(ski=issuer.ski, number=number, delta_base=base.number if base else None,
                                         freshest=freshest, **self._idp(stream))
        head = CrlHeader(issuer.name_der, now - timedelta(seconds=crl_cfg.backdate_seconds), next_update, exts,
                         issued_at=now)
        current = self.current_file(stream)
        current.parent.mkdir(parents=True, exist_ok=True)
        tmp = current.parent / f".tmp-{stream.name}-{number}-{os.getpid()}.crl"
        tmp.unlink(missing_ok=True)
        signer = self.keyring.ca_signer(issuer.id)
        try:
            written = write_crl(tmp, head, prefetched(self._rows(stream, now, base)), signer,
                                rsa_public_key(issuer).key_size)
            check_crl(tmp.read_bytes(), issuer=issuer, number=number, last_number=last_number,
                      this_update=written.this_update, next_update=next_update, entries=written.entries,
                      delta_base=base.number if base else None, scoped=stream.scope != FULL)
            archived = self.archive_file(stream, number)
            archived.parent.mkdir(parents=True, exist_ok=True)
            archived.unlink(missing_ok=True)
            os.link(tmp, archived)
            _fsync_dir(archived.parent)
            os.replace(tmp, current)
            _fsync_dir(current.parent)
        finally:
            tmp.unlink(missing_ok=True)
        rec = PublishedCrl(
            ca_id=issuer.id, scope=stream.scope, delta=stream.delta, number=number,
            base_number=base.number if base else None, this_update=written.this_update, next_update=next_update,
            revocation_seq=seq, entries=written.entries, size=written.size, sha256=written.sha256,
            published_at=self.clock.now(),
        )
        with self.store.session() as s:
            s.add(rec)
        self._prune(stream)
        log.info("published %s number %d (%d entries, %d bytes)", stream.label, number, written.entries, written.size)
        return rec

    def _prune(self, stream: Stream) -> None:
        keep = self.config.crl.archive_keep
        if keep <= 0:
            return
        for rec in self.records(stream)[:-keep]:
            self.archive_file(stream, rec.number).unlink(missing_ok=True)

    @audit.operation("crl.publish", lambda a: " ".join(s.label for s in a["streams"]) or "none")
    def publish_many(self, streams: list[Stream], progress: bool = False) -> list[tuple[Stream, PublishedCrl]]:
        from tqdm import tqdm

        out = []
        for stream in tqdm(streams, desc="publishing CRLs", unit="crl", disable=not progress):
            out.append((stream, self.publish(stream)))
        return out

    def publish_due(self) -> tuple[list[tuple[Stream, PublishedCrl]], list[tuple[Stream, Exception]]]:
        """Publish every stream that is due; one stream failing does not stop the others."""
        now = self.clock.now()
        done, failed = [], []
        for stream in self.streams():
            try:
                if self.due(stream, now):
                    done.append((stream, self.publish(stream)))
            except Exception as exc:  # logged by the caller; the previous CRL stays served
                failed.append((stream, exc))
        return done, failed


@dataclass(frozen=True)
class _Found:
    """A valid CRL found on disk by recovery."""

    number: int
    delta_base: int | None
    this_update: datetime
    next_update: datetime
    entries: int


def _scope_streams(stream: Stream) -> list[Stream]:
    """The streams sharing ``stream``'s scope, number sequence and lock: complete and delta."""
    base = stream.base()
    return [base] if base.scope == ARL else [base, Stream(base.issuer, base.scope, True)]


def issued_at(rec: PublishedCrl, backdate_seconds: int) -> datetime:
    """When a recorded CRL was issued: its thisUpdate is backdated (at most ``backdate_seconds``,
    less when raised to a revocationDate) and it was recorded after the issue, so the earlier of
    thisUpdate + backdate and the record time is the issue time, give or take the seconds the
    writing took.  The schedule counts its period from this, so backdating does not make each
    day's CRL come earlier than the last."""
    return min(rec.this_update + timedelta(seconds=backdate_seconds), rec.published_at)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_scope(partition: str) -> str:
    if partition in (FULL, ARL) or municipalities.is_known(partition):
        return partition
    raise InvalidInput(f"{partition!r} is not a CRL partition", field="partition",
                       allowed=_partitions_allowed(partition))


def _partitions_allowed(partition: str = "") -> str:
    """What a partition may be; for a code-like name, the real municipality codes nearest it."""
    nearest = ""
    if len(partition) in (5, 6) and partition.isascii() and partition.isdigit():
        nearest = " such as " + ", ".join(m.label for m in municipalities.nearest(partition[:5]))
    return f"{FULL}, {ARL} or a 5-digit municipality code{nearest} (docs/crl.md)"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rsa_public_key(issuer: Issuer) -> rsa.RSAPublicKey:
    """The issuing generation's key: JPKI CAs sign CRLs with sha256WithRSAEncryption
    (crl.writer), so any other key type cannot have signed one."""
    key = issuer.certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise PublishError(f"{issuer.label}'s key is not an RSA key", field="signature")
    return key


def verify_signature(data: bytes, issuer: Issuer) -> None:
    """Hash the TBSCertList bytes exactly as they are in the file and verify the signature with the
    issuer's public key (cryptography's is_signature_valid re-encodes every entry: slow and large)."""
    view = memoryview(data)
    try:
        tag, start, end = der.read_tlv(view, 0, len(view))
        if tag != der.SEQUENCE or end != len(data):
            raise PublishError("the CRL is not one DER SEQUENCE", field="crl")
        tbs_tag, _, tbs_end = der.read_tlv(view, start, len(view))
        _, _, alg_end = der.read_tlv(view, tbs_end, len(view))
        sig_tag, sig_start, sig_end = der.read_tlv(view, alg_end, len(view))
    except MalformedData as exc:
        raise PublishError(f"the CRL's outer structure does not decode: {exc}", field="crl") from None
    if tbs_tag != der.SEQUENCE or sig_tag != der.BIT_STRING or sig_end != end or view[sig_start] != 0:
        raise PublishError("the CRL's outer structure is wrong", field="crl")
    digest = hashlib.sha256(view[start:tbs_end]).digest()
    try:
        rsa_public_key(issuer).verify(bytes(view[sig_start + 1:sig_end]), digest, padding.PKCS1v15(),
                                      utils.Prehashed(hashes.SHA256()))
    except InvalidSignature:
        raise PublishError(f"the signature does not verify with {issuer.label}'s key", field="signature") from None


def check_crl(data: bytes, *, issuer: Issuer, number: int, last_number: int, this_update: datetime,
              next_update: datetime, entries: int, delta_base: int | None, scoped: bool) -> None:
    """Pre-publication checks; raises PublishError naming the first failure."""
    try:
        crl = x509.load_der_x509_crl(data)  # parses every entry (Rust)
    except ValueError as exc:
        raise PublishError(f"the CRL does not parse: {exc}", field="crl") from None
    verify_signature(data, issuer)

    def fail(msg: str, field: str) -> None:
        raise PublishError(msg, field=field)

    if crl.issuer.public_bytes() != issuer.name_der:
        fail("issuer name differs from the CA certificate's subject", "issuer")
    try:
        got_number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound as exc:
        raise PublishError(f"missing extension {exc.oid.dotted_string}", field="extensions") from None
    if got_number != number or number <= last_number:
        fail(f"cRLNumber {got_number} is not greater than the last published {last_number}", "crl_number")
    if aki != issuer.ski:
        fail("authorityKeyIdentifier does not match the issuing generation's key", "authority_key_identifier")
    if crl.last_update_utc != this_update or crl.next_update_utc != next_update or next_update <= this_update:
        fail(f"thisUpdate/nextUpdate are {crl.last_update_utc}/{crl.next_update_utc}", "next_update")
    if len(crl) != entries:
        fail(f"{len(crl)} entries parsed, {entries} written", "entries")
    has = {e.oid for e in crl.extensions}
    if (x509.oid.ExtensionOID.ISSUING_DISTRIBUTION_POINT in has) != scoped:
        fail("issuingDistributionPoint presence does not match the CRL's scope", "issuing_distribution_point")
    if delta_base is not None:
        got = crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number \
            if x509.oid.ExtensionOID.DELTA_CRL_INDICATOR in has else None
        if got != delta_base:
            fail(f"deltaCRLIndicator is {got}, expected the base's number {delta_base}", "delta_crl_indicator")
