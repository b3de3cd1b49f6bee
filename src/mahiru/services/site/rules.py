"""The rules a site publishes: checked against the registry replica's keys, then stored.

The site's own users add rules signed with their party's main key; peers
replicate them from this site's change log. A rule is stored only if it is in
the namespace of the site's owner party (rules of other namespaces arrive by
replication from their owners' sites) and verifies with the owner's key, and
revoked only by a revocation that same party signed.

Revocation beats re-publication: a revocation known here, published here or
replicated from any peer, undoes every copy of its rule whatever site relayed
it (`in_force`), and a rule revoked anywhere can never be added again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mahiru.errors import Conflict, MahiruError, PermissionDenied
from mahiru.model.identifiers import PartyId
from mahiru.model.people import Person
from mahiru.model.registry import ChangeBatch
from mahiru.policy.changes import RuleChange
from mahiru.policy.signing import Revocation, SignedRule, in_force
from mahiru.services.site.validation import KeyRing
from mahiru.storage import ReplicaRepository, RuleRepository

logger = logging.getLogger("mahiru.site.rules")


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What storing a rule or revocation did: `changed` is False if it was already there."""

    rule_id: str
    changed: bool
    version: int | None


class RuleService:
    """Adds, revokes and lists this site's own rules.

    `on_change` is called after every change with the rules added and the
    revocations stored, so the site's policy view applies just that at once.
    """

    def __init__(
        self,
        rules: RuleRepository,
        replica: ReplicaRepository,
        *,
        owner: PartyId,
        on_change: Callable[[Sequence[SignedRule], Sequence[Revocation]], None],
    ) -> None:
        self._rules = rules
        self._replica = replica
        self._owner = owner
        self._on_change = on_change

    @property
    def owner(self) -> PartyId:
        """The party whose rules this site stores and publishes: the site's owner."""
        return self._owner

    def _keys(self) -> KeyRing:
        return KeyRing.of(self._replica.parties())

    def add(self, signed: SignedRule, *, user: Person | None = None) -> RuleOutcome:
        """Verify and store a signed rule sent by `user` (named in the audit record).

        Raises PermissionDenied for a rule outside the namespace of this
        site's owner, InvalidSignature (with the reason) if it was not signed
        by the owner of its namespace, Conflict if it was revoked before, here
        or at any peer.
        """
        who = None if user is None else str(user)
        try:
            self._check_new(signed)
            version = self._rules.add(signed, user=who)
        except MahiruError as error:
            self._rules.rejected(signed.rule_id, str(signed.rule), error.message, user=who)
            raise
        if version is not None:
            logger.info(
                "rule added",
                extra={"rule_id": signed.rule_id, "rule": str(signed.rule), "version": version},
            )
            self._on_change([signed], [])
        return RuleOutcome(signed.rule_id, version is not None, version)

    def _check_new(self, signed: SignedRule) -> None:
        """Refuse a rule this site may not store (see `add`)."""
        namespace = signed.rule.signer_namespace()
        if namespace != self._owner.namespace:
            raise PermissionDenied(
                f"this site stores only rules of {self._owner}'s namespace"
                f" ({self._owner.namespace}); {signed.rule} belongs to namespace"
                f" {namespace!r}: its owner publishes it at one of its own sites",
                {"rule_id": signed.rule_id, "namespace": namespace, "owner": str(self._owner)},
            )
        self._keys().check_rule(signed)
        if any(revocation.rule_id == signed.rule_id for revocation in self.revocations()):
            raise Conflict(
                f"rule {signed.rule_id} ({signed.rule}) was revoked and cannot be added again",
                {"rule_id": signed.rule_id},
            )

    def revoke(self, revocation: Revocation, *, user: Person | None = None) -> RuleOutcome:
        """Verify a signed revocation sent by `user` and revoke the rule it names.

        Raises InvalidSignature if the revocation was not signed by the owner
        of its namespace or names another namespace than the rule's signer,
        NotFound if the rule is not stored here.
        """
        who = None if user is None else str(user)
        try:
            self._keys().check_revocation(revocation)
            version = self._rules.revoke(revocation, user=who)
        except MahiruError as error:
            self._rules.rejected(revocation.rule_id, None, error.message, revocation=True, user=who)
            raise
        if version is not None:
            logger.info("rule revoked", extra={"rule_id": revocation.rule_id, "version": version})
            self._on_change([], [revocation])
        return RuleOutcome(revocation.rule_id, version is not None, version)

    def revocations(self) -> list[Revocation]:
        """Every revocation known here: published here or replicated from any peer."""
        return [*self._rules.revocations(), *self._replica.revocations()]

    def active(self) -> list[SignedRule]:
        """This site's rules that no known revocation undoes, oldest first."""
        return in_force(self._rules.active_rules(), self.revocations())

    def replicated(self, source: str | None = None) -> list[SignedRule]:
        """Peers' rules (of one `source` site, or all) that no known revocation undoes."""
        return in_force(self._replica.rules(source), self.revocations())

    def in_force(self) -> list[SignedRule]:
        """Every rule decisions are made from: this site's and its peers', each once."""
        revocations = self.revocations()
        return in_force([*self._rules.active_rules(), *self._replica.rules()], revocations)

    def changes_since(self, version: int, *, limit: int | None = None) -> ChangeBatch[RuleChange]:
        """The change log after `version`, for peers replicating this site's rules."""
        return self._rules.changes_since(version, limit=limit)

    def version(self) -> int:
        """The version of the newest change to this site's rules."""
        return self._rules.version()

    def known_version(self) -> int | None:
        """`version`, if it is known without reading the database; else None."""
        return self._rules.known_version()
