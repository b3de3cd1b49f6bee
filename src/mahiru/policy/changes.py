"""The rule log's values: rules added and revoked, as a site stores and replicates them.

A change has a strict dict form (`to_dict` / `from_dict`) so sites can send
their rule logs to each other over HTTP exactly as they are stored. Changes
from a peer that cannot be parsed or do not validate are kept aside with the
reason (`UnreadableRuleChange`, `RejectedRule`) rather than block the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from mahiru.errors import InvalidInput
from mahiru.model.fields import check_fields, text, timestamp
from mahiru.model.registry import ChangeAction, change_action, change_version
from mahiru.policy.signing import Revocation, SignedRule


@dataclass(frozen=True, slots=True)
class RuleChange:
    """One entry of a site's rule log: a rule added, or a rule revoked."""

    version: int
    action: ChangeAction
    rule_id: str
    rule: SignedRule | None
    revocation: Revocation | None
    at: datetime

    def body(self) -> dict[str, Any]:
        """The signed rule's or revocation's JSON form."""
        if self.rule is not None:
            return self.rule.to_dict()
        assert self.revocation is not None  # one of the two is always set
        return dict(self.revocation.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the signed rule or the revocation under `body`."""
        return {
            "version": self.version,
            "action": self.action.value,
            "rule_id": self.rule_id,
            "body": self.body(),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleChange:
        """Parse the JSON form strictly.

        Only the shape is checked here; signatures are the service's business.
        The rule_id must be the id of the rule in the body.
        """
        what = "rule change"
        keys = {"version", "action", "rule_id", "body", "at"}
        check_fields(data, what, keys, headed=True, details={"data": data})
        action = change_action(data, (ChangeAction.ADDED, ChangeAction.REVOKED), what)
        rule_id = text(data, "rule_id", what)
        rule: SignedRule | None = None
        revocation: Revocation | None = None
        if action is ChangeAction.ADDED:
            rule = SignedRule.from_dict(data["body"])
            body_id = rule.rule_id
        else:
            revocation = Revocation.from_dict(data["body"])
            body_id = revocation.rule_id
        if body_id != rule_id:
            raise InvalidInput(f"{what}: rule_id {rule_id} does not match its body ({body_id})")
        at = timestamp(data, "at", what)
        return cls(change_version(data, what), action, rule_id, rule, revocation, at)


@dataclass(frozen=True, slots=True)
class RejectedRule:
    """A rule (or revocation) from a peer that failed validation, kept for diagnostics."""

    source: str
    version: int
    rule_id: str | None
    body: Mapping[str, Any]
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class UnreadableRuleChange:
    """A rule change from a peer that could not even be parsed, with the reason."""

    version: int
    rule_id: str | None
    body: Mapping[str, Any]
    reason: str


class PeerRuleBatch(NamedTuple):
    """A page of a peer's rule log: parsed changes (or unreadable ones) and the version."""

    changes: list[RuleChange | UnreadableRuleChange]
    version: int
