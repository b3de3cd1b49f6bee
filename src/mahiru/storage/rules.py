"""A site's own rules and revocations, with a change log its peers replicate.

Checking signatures is the service's job (it has the registry's keys); this
repository only stores what it is given, once, and refuses to bring a
revoked rule back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Conflict, InvalidSignature, NotFound
from mahiru.model.registry import ChangeAction, ChangeBatch
from mahiru.policy.changes import RuleChange
from mahiru.policy.signing import Revocation, SignedRule
from mahiru.storage import changelog
from mahiru.storage.audit import AuditLog, rule_entry
from mahiru.storage.db import Database
from mahiru.storage.schema import RULES_LOG, rule_changes, rules
from mahiru.storage.write_counts import WriteCounts, WriteKind


class RuleRepository:
    """Signed rules published at this site, their revocations, and a versioned log of both."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = SYSTEM_CLOCK,
        audit: AuditLog | None = None,
        counts: WriteCounts | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._audit = audit if audit is not None else AuditLog(database, clock=clock)
        #: Rule changes written (by every process of the site, if the counts are shared),
        #: and the version as last read with the count of writes then: this site's own
        #: rules change only through its own repositories.
        self._counts = counts if counts is not None else WriteCounts()
        self._version: tuple[int, int] | None = None

    def add(self, signed: SignedRule, *, user: str | None = None) -> int | None:
        """Store a rule at the request of the person `user`; return the new version, or
        None if it was already stored.

        Adding the same rule again changes nothing. Raises Conflict if the
        rule was revoked: a revocation is final (re-adding it would let an
        old copy undo it).
        """
        rule_id = signed.rule_id
        try:
            with self._db.transaction() as session:
                current = changelog.begin_change(session, RULES_LOG)
                row = session.execute(
                    select(rules.c.revoked_version).where(rules.c.rule_id == rule_id)
                ).one_or_none()
                if row is not None:
                    if row.revoked_version is not None:
                        raise Conflict(
                            f"rule {rule_id} ({signed.rule}) was revoked and cannot be added again",
                            {"rule_id": rule_id},
                        )
                    return None
                version = changelog.next_version(session, RULES_LOG, current)
                body = signed.to_dict()
                session.execute(
                    insert(rules).values(
                        rule_id=rule_id,
                        body=body,
                        signer_namespace=signed.rule.signer_namespace(),
                        added_version=version,
                    )
                )
                self._log(session, version, ChangeAction.ADDED, rule_id, body)
                self._audit.record(
                    rule_entry(
                        "added",
                        rule_id,
                        str(signed.rule),
                        actor=signed.rule.signer_namespace(),
                        user=user,
                    )
                )
                return version

        finally:
            self._counts.wrote(WriteKind.OWN_RULES)

    def revoke(self, revocation: Revocation, *, user: str | None = None) -> int | None:
        """Mark a stored rule revoked at the request of the person `user`; return the new
        version, or None if it already was.

        Raises NotFound for a rule that is not stored here, and
        InvalidSignature if the revocation names a namespace other than the
        one whose owner signed the rule.
        """
        rule_id = revocation.rule_id
        try:
            with self._db.transaction() as session:
                current = changelog.begin_change(session, RULES_LOG)
                row = session.execute(
                    select(rules.c.signer_namespace, rules.c.revoked_version).where(
                        rules.c.rule_id == rule_id
                    )
                ).one_or_none()
                if row is None:
                    raise NotFound(f"rule {rule_id} is not stored here", {"rule_id": rule_id})
                if row.signer_namespace != revocation.namespace:
                    raise InvalidSignature(
                        f"rule {rule_id} was signed for namespace {row.signer_namespace!r};"
                        f" a revocation for {revocation.namespace!r} cannot revoke it",
                        {"rule_id": rule_id, "namespace": revocation.namespace},
                    )
                if row.revoked_version is not None:
                    return None
                version = changelog.next_version(session, RULES_LOG, current)
                body = revocation.to_dict()
                session.execute(
                    update(rules)
                    .where(rules.c.rule_id == rule_id)
                    .values(revocation=body, revoked_version=version)
                )
                self._log(session, version, ChangeAction.REVOKED, rule_id, dict(body))
                self._audit.record(
                    rule_entry("revoked", rule_id, actor=revocation.namespace, user=user)
                )
                return version

        finally:
            self._counts.wrote(WriteKind.OWN_RULES)

    def rejected(
        self,
        rule_id: str,
        rule: str | None,
        reason: str,
        *,
        revocation: bool = False,
        user: str | None = None,
    ) -> None:
        """Record in the audit log that a rule (or its revocation) `user` sent was refused,
        and why."""
        what = "revocation rejected" if revocation else "rejected"
        self._audit.record(rule_entry(what, rule_id, rule, reason=reason, user=user))

    def _log(
        self,
        session: Session,
        version: int,
        action: ChangeAction,
        rule_id: str,
        body: dict[str, Any],
    ) -> None:
        session.execute(
            insert(rule_changes).values(
                version=version,
                action=action.value,
                rule_id=rule_id,
                body=body,
                at=self._clock.now(),
            )
        )

    def get(self, rule_id: str) -> SignedRule:
        """The stored rule with this id, revoked or not; NotFound if there is none."""
        with self._db.read() as session:
            body = session.execute(
                select(rules.c.body).where(rules.c.rule_id == rule_id)
            ).scalar_one_or_none()
        if body is None:
            raise NotFound(f"rule {rule_id} is not stored here", {"rule_id": rule_id})
        return SignedRule.from_dict(body)

    def active_rules(self) -> list[SignedRule]:
        """All stored rules that are not revoked, oldest first."""
        with self._db.read() as session:
            bodies = session.execute(
                select(rules.c.body)
                .where(rules.c.revoked_version.is_(None))
                .order_by(rules.c.added_version)
            ).scalars()
            return [SignedRule.from_dict(body) for body in bodies]

    def revocations(self) -> list[Revocation]:
        """The revocations of rules published here, oldest first."""
        with self._db.read() as session:
            bodies = session.execute(
                select(rules.c.revocation)
                .where(rules.c.revoked_version.is_not(None))
                .order_by(rules.c.revoked_version)
            ).scalars()
            return [Revocation.from_dict(body) for body in bodies]

    def version(self) -> int:
        """The version of the newest change (0 if no rule was ever added)."""
        known = self.known_version()
        if known is not None:
            return known
        # Counted before reading: a write meanwhile makes this out of date.
        writes = self._counts.count(WriteKind.OWN_RULES)
        with self._db.read() as session:
            version = changelog.current_version(session, RULES_LOG)
        self._version = (writes, version)
        return version

    def known_version(self) -> int | None:
        """The version of the newest change, if known without reading the database (nothing
        was written through here since it was last read); else None."""
        known = self._version
        written = self._counts.count(WriteKind.OWN_RULES)
        return known[1] if known is not None and known[0] == written else None

    def changes_since(self, version: int, *, limit: int | None = None) -> ChangeBatch[RuleChange]:
        """The changes after `version`, oldest first, and the version to continue from.

        With `limit`, at most that many changes are returned and the version
        is that of the last one; ask again until no changes come back.
        """
        return changelog.changes_since(
            self._db, RULES_LOG, rule_changes, version, limit, _rule_change_from_row
        )


def _rule_change_from_row(row: Row[Any]) -> RuleChange:
    data = row._mapping
    action = ChangeAction(data["action"])
    rule: SignedRule | None = None
    revocation: Revocation | None = None
    if action is ChangeAction.ADDED:
        rule = SignedRule.from_dict(data["body"])
    else:
        revocation = Revocation.from_dict(data["body"])
    return RuleChange(data["version"], action, data["rule_id"], rule, revocation, data["at"])
