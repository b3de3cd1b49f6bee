"""One set of rules in force, as an engine, and how a change to the stored rules makes the next.

A snapshot is built once from every stored rule and revocation (`built`);
after that each change (rules added here or replicated, revocations) makes
the next snapshot from this one (`changed`), sharing every part of the rule
indexes the change did not touch, so its cost is that of the change and not
of the number of rules. Both ways give the same rules in force, as
`mahiru.policy.signing.in_force` defines them: a revocation undoes a rule of
its namespace whatever site relayed either, and a revoked rule never comes
back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mahiru.policy.engine import PolicyEngine
from mahiru.policy.rules import Rule
from mahiru.policy.shared_map import SharedMap
from mahiru.policy.signing import Revocation, SignedRule
from mahiru.policy.store import RuleStore

__all__ = ["PolicySnapshot"]

#: A revocation as it undoes rules: the rule id and the namespace that signed it.
_Revoked = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """An engine over the rules in force, the number of that set of rules, and the rules by id.

    `version` changes exactly when the set of rules in force does, so a
    decision made with one version stands for as long as the view's version
    is the same.
    """

    engine: PolicyEngine
    version: int
    #: The rules in force by id, as signed (to find the rule a review names).
    by_id: SharedMap[str, SignedRule]
    #: Every revocation known, whether or not its rule was ever seen here.
    revoked: SharedMap[_Revoked, None]

    @classmethod
    def built(
        cls,
        signed: Iterable[SignedRule],
        revocations: Iterable[Revocation],
        previous: PolicySnapshot | None,
    ) -> PolicySnapshot:
        """A snapshot of `signed` (the rules in force, each once), knowing `revocations`.

        `previous` itself if it has the same rules (every decision made from
        them still stands), else one with the next version.
        """
        signed = list(signed)
        by_id = SharedMap((s.rule_id, s) for s in signed)
        revoked = SharedMap(((r.rule_id, r.namespace), None) for r in revocations)
        if previous is not None and set(by_id) == set(previous.by_id):
            return cls(previous.engine, previous.version, previous.by_id, revoked)
        engine = PolicyEngine(RuleStore(s.rule for s in signed))
        return cls(engine, 1 if previous is None else previous.version + 1, by_id, revoked)

    def changed(
        self, added: Iterable[SignedRule] = (), revoked: Iterable[Revocation] = ()
    ) -> PolicySnapshot:
        """The next snapshot once `added` are stored and `revoked` known (self if the same).

        Equivalent to `built` from every stored rule and revocation: a rule
        already in force or revoked is not added, and a revocation removes its
        rule if that rule was signed for the revocation's namespace.
        """
        by_id = self.by_id.edit()
        known = self.revoked.edit()
        removed: list[Rule] = []
        for revocation in revoked:
            key = (revocation.rule_id, revocation.namespace)
            known[key] = None
            signed = by_id.get(revocation.rule_id)
            if signed is not None and signed.rule.signer_namespace() == revocation.namespace:
                by_id.pop(revocation.rule_id)
                removed.append(signed.rule)
        fresh: list[Rule] = []
        for signed in added:
            rule_id = signed.rule_id
            if by_id.get(rule_id) is not None:
                continue
            if (rule_id, signed.rule.signer_namespace()) in known:
                continue
            by_id[rule_id] = signed
            fresh.append(signed.rule)
        if not removed and not fresh:
            return PolicySnapshot(self.engine, self.version, self.by_id, known.done())
        store = self.engine.store.changed(added=fresh, removed=removed)
        return PolicySnapshot(PolicyEngine(store), self.version + 1, by_id.done(), known.done())
