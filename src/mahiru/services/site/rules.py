"""The rules a site publishes: checked against the registry replica's keys, then stored.

The site's own users add rules signed with their party's main key; peers
replicate them from this site's change log. A rule is stored only if it
verifies with the key of the party owning its signer namespace, and revoked
only by a revocation that same party signed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from mahiru.policy.signing import Revocation, SignedRule
from mahiru.services.site.validation import KeyRing
from mahiru.storage import ChangeBatch, ReplicaRepository, RuleChange, RuleRepository

logger = logging.getLogger("mahiru.site.rules")


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What storing a rule or revocation did: `changed` is False if it was already there."""

    rule_id: str
    changed: bool
    version: int | None


class RuleService:
    """Adds, revokes and lists this site's own rules.

    `on_change` is called after every change, so the site's policy view
    picks it up at once.
    """

    def __init__(
        self,
        rules: RuleRepository,
        replica: ReplicaRepository,
        *,
        on_change: Callable[[], None],
    ) -> None:
        self._rules = rules
        self._replica = replica
        self._on_change = on_change

    def _keys(self) -> KeyRing:
        return KeyRing.of(self._replica.parties())

    def add(self, signed: SignedRule) -> RuleOutcome:
        """Verify and store a signed rule.

        Raises InvalidSignature (with the reason) if it was not signed by the
        owner of its namespace, Conflict if it was revoked before.
        """
        self._keys().check_rule(signed)
        version = self._rules.add(signed)
        if version is not None:
            logger.info(
                "rule added",
                extra={"rule_id": signed.rule_id, "rule": str(signed.rule), "version": version},
            )
            self._on_change()
        return RuleOutcome(signed.rule_id, version is not None, version)

    def revoke(self, revocation: Revocation) -> RuleOutcome:
        """Verify a signed revocation and revoke the rule it names.

        Raises InvalidSignature if the revocation was not signed by the owner
        of its namespace or names another namespace than the rule's signer,
        NotFound if the rule is not stored here.
        """
        self._keys().check_revocation(revocation)
        version = self._rules.revoke(revocation)
        if version is not None:
            logger.info("rule revoked", extra={"rule_id": revocation.rule_id, "version": version})
            self._on_change()
        return RuleOutcome(revocation.rule_id, version is not None, version)

    def active(self) -> list[SignedRule]:
        """This site's rules that are not revoked, oldest first."""
        return self._rules.active_rules()

    def changes_since(self, version: int, *, limit: int | None = None) -> ChangeBatch[RuleChange]:
        """The change log after `version`, for peers replicating this site's rules."""
        return self._rules.changes_since(version, limit=limit)

    def version(self) -> int:
        """The version of the newest change to this site's rules."""
        return self._rules.version()
