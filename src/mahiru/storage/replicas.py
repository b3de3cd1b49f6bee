"""A site's persisted replicas of the registry and of its peers' rules.

A replica is fed batches of changes fetched from a source (`"registry"` or a
peer's site id text) and remembers the last version it applied from each, so
a restarted site carries on from there and keeps working while the registry
or a peer is down. A batch is applied all or nothing, version included.

Validating peers' rules (signatures, signer authority) is the service's job:
it passes the rules it accepted as changes and the others as `RejectedRule`s,
which are kept, with the reason, for diagnostics only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Conflict, InvalidInput
from mahiru.model.identifiers import SiteId
from mahiru.model.registry import ChangeAction, RegistryChange
from mahiru.policy.changes import RejectedRule, RuleChange
from mahiru.policy.signing import Revocation, SignedRule, in_force
from mahiru.storage.audit import AuditLog, rule_entry
from mahiru.storage.db import Database, insert_ignoring_duplicates
from mahiru.storage.directory import Directory
from mahiru.storage.schema import (
    replica_parties,
    replica_rejections,
    replica_revocations,
    replica_rules,
    replica_sites,
    replica_sources,
)
from mahiru.storage.write_counts import WriteCounts, WriteKind

#: The source name of the registry replica; peers are named by their site id text.
REGISTRY_SOURCE = "registry"


def _check_source(source: str) -> str:
    if source != REGISTRY_SOURCE:
        SiteId.parse(source)  # raises InvalidIdentifier naming the text
    return source


class ReplicaRepository(Directory):
    """The registry's parties and sites and every peer's rules, as last seen, per source.

    The queries on the replicated registry (`parties`, `party`,
    `party_for_namespace`, `sites`, `site`) are the `Directory`'s.
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = SYSTEM_CLOCK,
        audit: AuditLog | None = None,
        counts: WriteCounts | None = None,
    ) -> None:
        super().__init__(database, replica_parties, replica_sites)
        self._db = database
        self._clock = clock
        self._audit = audit if audit is not None else AuditLog(database, clock=clock)
        self._counts = counts if counts is not None else WriteCounts()

    @property
    def registry_writes(self) -> int:
        """How many times the replicated registry was written (by any process of the site,
        if the counts are shared): what was read of it before the count last changed may be
        out of date."""
        return self._counts.count(WriteKind.REGISTRY)

    @property
    def rule_writes(self) -> int:
        """How many times peers' rules were written (as `registry_writes`)."""
        return self._counts.count(WriteKind.PEER_RULES)

    # --- bookkeeping -------------------------------------------------------

    def last_version(self, source: str) -> int:
        """The version last applied from `source` (0 if nothing was ever applied)."""
        with self._db.read() as session:
            version = session.execute(
                select(replica_sources.c.version).where(
                    replica_sources.c.source == _check_source(source)
                )
            ).scalar_one_or_none()
        return 0 if version is None else version

    def sources(self) -> dict[str, int]:
        """Every source replicated so far, with the version last applied from it."""
        with self._db.read() as session:
            rows = session.execute(select(replica_sources).order_by(replica_sources.c.source))
            return {row.source: row.version for row in rows}

    def applied_at(self) -> dict[str, datetime]:
        """When a batch from each source was last applied (by any process of the site)."""
        with self._db.read() as session:
            rows = session.execute(select(replica_sources.c.source, replica_sources.c.updated_at))
            return {row.source: row.updated_at for row in rows}

    def forget(self, source: str) -> None:
        """Drop everything replicated from `source`, to start over from version 0.

        For a source that was reset (it reports a version lower than the one
        last applied). Forgetting the registry clears parties and sites.
        """
        source = _check_source(source)
        try:
            with self._db.transaction() as session:
                if source == REGISTRY_SOURCE:
                    session.execute(delete(replica_parties))
                    session.execute(delete(replica_sites))
                for table in (replica_rules, replica_revocations, replica_rejections):
                    session.execute(delete(table).where(table.c.source == source))
                session.execute(delete(replica_sources).where(replica_sources.c.source == source))
        finally:
            self._counts.wrote(
                WriteKind.REGISTRY if source == REGISTRY_SOURCE else WriteKind.PEER_RULES
            )

    def _begin_batch(self, session: Session, source: str, version: int) -> int:
        """Lock `source`'s row and return the version last applied from it."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInput(f"replica version must be a non-negative integer, got {version!r}")
        insert_ignoring_duplicates(
            session,
            replica_sources,
            {"source": source, "version": 0, "updated_at": self._clock.now()},
        )
        last: int = session.execute(
            select(replica_sources.c.version)
            .where(replica_sources.c.source == source)
            .with_for_update()
        ).scalar_one()
        if version < last:
            raise Conflict(
                f"{source} reports version {version}, but version {last} was already applied"
                " from it; it was reset: forget the replica and replicate again from 0",
                {"source": source, "version": version, "applied": last},
            )
        return last

    def _end_batch(self, session: Session, source: str, version: int) -> None:
        session.execute(
            update(replica_sources)
            .where(replica_sources.c.source == source)
            .values(version=version, updated_at=self._clock.now())
        )

    # --- applying batches --------------------------------------------------

    def apply_registry_changes(self, changes: Iterable[RegistryChange], version: int) -> int:
        """Apply registry changes and remember `version`, atomically; return how many applied.

        Changes at or below the version already applied are skipped, so
        applying a batch twice is harmless. Raises Conflict if `version` is
        below the one already applied, InvalidInput for a change above
        `version` or a change without the record it needs; either way nothing
        of the batch is kept.
        """
        with self._db.transaction() as session:
            last = self._begin_batch(session, REGISTRY_SOURCE, version)
            applied = 0
            for change in changes:
                if not _in_batch(change.version, last, version, REGISTRY_SOURCE):
                    continue
                _apply_registry_change(session, change)
                applied += 1
            self._end_batch(session, REGISTRY_SOURCE, version)
        if applied:  # committed: counted only if parties or sites changed
            self._counts.wrote(WriteKind.REGISTRY)
        return applied

    def apply_rule_changes(
        self,
        source: str,
        changes: Iterable[RuleChange],
        version: int,
        rejected: Iterable[RejectedRule] = (),
    ) -> int:
        """Apply a peer's accepted rule changes, record its rejected ones, and remember `version`.

        All or nothing, like `apply_registry_changes`; `source` is the peer's
        site id text. Returns how many accepted changes were applied.
        """
        SiteId.parse(source)
        applied = self._apply_rule_changes(source, changes, version, rejected)
        if applied:  # committed: counted only if rules in force may have changed
            self._counts.wrote(WriteKind.PEER_RULES)
        return applied

    def _apply_rule_changes(
        self,
        source: str,
        changes: Iterable[RuleChange],
        version: int,
        rejected: Iterable[RejectedRule],
    ) -> int:
        with self._db.transaction() as session:
            last = self._begin_batch(session, source, version)
            applied = 0
            for change in changes:
                if not _in_batch(change.version, last, version, source):
                    continue
                _apply_rule_change(session, source, change)
                self._audit.record(
                    rule_entry(
                        change.action.value,
                        str(change.rule_id),
                        None if change.rule is None else str(change.rule.rule),
                        source=source,
                    )
                )
                applied += 1
            for rejection in rejected:
                if rejection.source != source:
                    raise InvalidInput(
                        f"a rejected rule from {rejection.source} in a batch from {source}"
                    )
                if _in_batch(rejection.version, last, version, source):
                    session.execute(
                        delete(replica_rejections).where(
                            replica_rejections.c.source == source,
                            replica_rejections.c.version == rejection.version,
                        )
                    )
                    session.execute(
                        insert(replica_rejections).values(
                            source=source,
                            version=rejection.version,
                            rule_id=rejection.rule_id,
                            body=dict(rejection.body),
                            reason=rejection.reason,
                            at=rejection.at,
                        )
                    )
                    self._audit.record(
                        rule_entry(
                            "rejected",
                            rejection.rule_id or "(no id)",
                            source=source,
                            reason=rejection.reason,
                        )
                    )
            self._end_batch(session, source, version)
            return applied

    # --- the replicated registry -------------------------------------------

    # --- replicated rules --------------------------------------------------

    def rules(self, source: str | None = None) -> list[SignedRule]:
        """Peers' rules that are not revoked, each once, by source and version.

        A revocation counts whatever peer it came from, but only for a rule
        signed for the revocation's namespace.
        """
        with self._db.read() as session:
            statement = select(replica_rules.c.body).order_by(
                replica_rules.c.source, replica_rules.c.version
            )
            if source is not None:
                statement = statement.where(replica_rules.c.source == _check_source(source))
            bodies = session.execute(statement).scalars().all()
        return in_force((SignedRule.from_dict(body) for body in bodies), self.revocations())

    def revocations(self) -> list[Revocation]:
        """Every revocation replicated from any peer (each was verified when it arrived)."""
        with self._db.read() as session:
            bodies = session.execute(
                select(replica_revocations.c.body).order_by(
                    replica_revocations.c.source, replica_revocations.c.version
                )
            ).scalars()
            return [Revocation.from_dict(body) for body in bodies]

    def rejected_rules(self, source: str | None = None) -> list[RejectedRule]:
        """Rules and revocations from peers that were rejected, with the reasons."""
        with self._db.read() as session:
            statement = select(replica_rejections).order_by(
                replica_rejections.c.source, replica_rejections.c.version
            )
            if source is not None:
                statement = statement.where(replica_rejections.c.source == _check_source(source))
            rows = session.execute(statement).all()
        return [
            RejectedRule(row.source, row.version, row.rule_id, row.body, row.reason, row.at)
            for row in rows
        ]

    def rejected_count(self) -> int:
        """How many rules and revocations from peers were rejected (without reading them)."""
        with self._db.read() as session:
            return int(
                session.execute(select(func.count()).select_from(replica_rejections)).scalar_one()
            )


def _in_batch(change_version: int, last: int, version: int, source: str) -> bool:
    """Whether a change is new (above `last`); InvalidInput if it lies beyond `version`."""
    if change_version > version:
        raise InvalidInput(
            f"a change from {source} has version {change_version},"
            f" beyond the batch's version {version}",
            {"source": source, "change": change_version, "version": version},
        )
    return change_version > last


def _apply_registry_change(session: Session, change: RegistryChange) -> None:
    subject = change.subject
    table = replica_sites if isinstance(subject, SiteId) else replica_parties
    session.execute(delete(table).where(table.c.id == str(subject)))
    if change.action is ChangeAction.REMOVED:
        return
    record = change.record
    if record is None or record.id != subject:
        raise InvalidInput(
            f"registry change {change.version} ({change.action.value} {subject})"
            " does not carry the record of its subject",
            {"version": change.version, "subject": str(subject)},
        )
    values: dict[str, Any] = record.to_dict()
    session.execute(insert(table).values(values))


def _apply_rule_change(session: Session, source: str, change: RuleChange) -> None:
    if change.action is ChangeAction.ADDED and change.rule is not None:
        table, body_id = replica_rules, change.rule.rule_id
    elif change.action is ChangeAction.REVOKED and change.revocation is not None:
        table, body_id = replica_revocations, change.revocation.rule_id
    else:
        raise InvalidInput(
            f"rule change {change.version} from {source} ({change.action.value})"
            " does not carry a rule or revocation to match",
            {"source": source, "version": change.version},
        )
    if body_id != change.rule_id:
        raise InvalidInput(
            f"rule change {change.version} from {source} names rule {change.rule_id}"
            f" but carries {body_id}",
            {"source": source, "version": change.version},
        )
    session.execute(
        delete(table).where(table.c.source == source, table.c.rule_id == change.rule_id)
    )
    session.execute(
        insert(table).values(
            source=source, rule_id=change.rule_id, body=change.body(), version=change.version
        )
    )
