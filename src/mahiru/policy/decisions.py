"""Decision values: allowed or denied, with the rule chains or missing requirements.

A decision about one item lists, per requirement, the chain of rules that met
it or nothing. Composite decisions (a step at a site, a whole job) hold the
item decisions they are made of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mahiru.errors import PermissionDenied
from mahiru.policy.permissions import Requirement
from mahiru.policy.rules import Rule


@dataclass(frozen=True, slots=True)
class RequirementOutcome:
    """One requirement and the rule chain that met it (None: nothing did)."""

    requirement: Requirement
    chain: tuple[Rule, ...] | None
    verb: str = "MayAccess"

    @property
    def met(self) -> bool:
        """Whether some rule chain met the requirement."""
        return self.chain is not None

    def explain(self) -> str:
        """One line: the chain that met it, or what was missing."""
        if self.chain is not None:
            return " -> ".join(str(rule) for rule in self.chain)
        texts = self.requirement.texts()
        if not texts:
            origin = f" ({self.requirement.origin})" if self.requirement.origin else ""
            return f"no rule says where this result may go{origin}, so nobody may have it"
        if len(texts) == 1:
            return f"no {self.verb} for {texts[0]} or anything containing it"
        return f"no {self.verb} for any of {', '.join(texts)} or anything containing them"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "requirement": self.requirement.texts(),
            "origin": self.requirement.origin,
            "met": self.met,
            "chain": [rule.to_dict() for rule in self.chain] if self.chain is not None else None,
            "explanation": self.explain(),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision: `subject` may (not) `action` `target`, and why.

    Leaf decisions carry `outcomes` (one per requirement); composite ones carry
    `parts`. A composite is allowed iff all its parts are.
    """

    allowed: bool
    subject: str
    action: str
    target: str
    outcomes: tuple[RequirementOutcome, ...] = ()
    parts: tuple[Decision, ...] = ()
    note: str = ""

    def __bool__(self) -> bool:
        return self.allowed

    @classmethod
    def all_of(
        cls, subject: str, action: str, target: str, parts: tuple[Decision, ...], note: str = ""
    ) -> Decision:
        """A composite decision, allowed iff every part is."""
        return cls(all(p.allowed for p in parts), subject, action, target, parts=parts, note=note)

    def headline(self) -> str:
        """`site2 may access compute.output0` or `... may not ...`."""
        verb = "may" if self.allowed else "may not"
        return f"{self.subject} {verb} {self.action} {self.target}"

    def failures(self) -> list[str]:
        """Every denied leaf as one line: `X may not access Y: reason`."""
        if self.allowed:
            return []
        lines: list[str] = []
        if self.note and not self.parts and not self.outcomes:
            lines.append(f"{self.headline()}: {self.note}")
        for outcome in self.outcomes:
            if not outcome.met:
                lines.append(f"{self.headline()}: {outcome.explain()}")
        for part in self.parts:
            lines.extend(part.failures())
        return lines

    def explain(self) -> str:
        """A human explanation: the headline, then what decided it.

        Allowed decisions show the rule chain behind every requirement; denied
        ones show only what failed, so the reason is not buried.
        """
        lines = [self.headline() + (f" ({self.note})" if self.note else "")]
        for outcome in self.outcomes:
            if outcome.met == self.allowed:
                status = "met by" if outcome.met else "not met:"
                lines.append(f"  requirement {{{', '.join(outcome.requirement.texts())}}}")
                lines.append(f"    {status} {outcome.explain()}")
        for part in self.parts:
            if self.allowed or not part.allowed:
                lines.extend("  " + line for line in part.explain().splitlines())
        return "\n".join(lines)

    def rule_ids(self) -> list[str]:
        """The ids of the rules in every chain that met a requirement, each once, sorted."""
        ids: set[str] = set()
        pending = [self]
        while pending:
            decision = pending.pop()
            for outcome in decision.outcomes:
                ids.update(rule.rule_id() for rule in outcome.chain or ())
            pending.extend(decision.parts)
        return sorted(ids)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, recursively."""
        out: dict[str, Any] = {
            "allowed": self.allowed,
            "subject": self.subject,
            "action": self.action,
            "target": self.target,
            "explanation": self.headline(),
        }
        if self.note:
            out["note"] = self.note
        if self.outcomes:
            out["requirements"] = [o.to_dict() for o in self.outcomes]
        if self.parts:
            out["parts"] = [p.to_dict() for p in self.parts]
        return out


@dataclass(frozen=True, slots=True)
class Release:
    """Leave for bytes to go out of a site, made only from a decision that allowed it.

    Every route that sends an asset, a result, a log or live data takes one
    (the egress gate): constructing it from a denial raises PermissionDenied
    with the decision's explanation, so bytes cannot leave without a yes.
    """

    decision: Decision

    def __post_init__(self) -> None:
        if not self.decision.allowed:
            raise PermissionDenied("; ".join(self.decision.failures()), self.decision.to_dict())
