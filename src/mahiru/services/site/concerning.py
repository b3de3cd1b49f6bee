"""What a decision is about and who asked: `Concerning`, as the audit log records it."""

from __future__ import annotations

from dataclasses import dataclass

from mahiru.model.audit import AuditEntry, AuditKind, shorten
from mahiru.policy.decisions import Decision


@dataclass(frozen=True, slots=True)
class Concerning:
    """What a decision is about and who asked, as the audit log records it.

    `action` names the decision path (`run step`, `receive steps`, `live
    grant`, `release to site`, `release to party`); `party` is the party
    whose job or download it is, which lets that party's users read the record;
    `user` the person (`name@party`) whose request it decides, if a person's.
    """

    action: str
    actor: str
    party: str | None = None
    job: str | None = None
    step: str | None = None
    asset: str | None = None
    user: str | None = None

    def entry(self, decision: Decision) -> AuditEntry:
        """The audit record of `decision` made about this."""
        return self.record(
            decision.allowed,
            {
                "decision": decision.headline(),
                "explanation": shorten(decision.explain()),
                "rules": decision.rule_ids(),
            },
        )

    def record(self, allowed: bool, details: dict[str, object]) -> AuditEntry:
        """The audit record of a decision about this, allowed or not, with `details`."""
        return AuditEntry(
            AuditKind.DECISION,
            self.action,
            "allowed" if allowed else "denied",
            actor=self.actor,
            party=self.party,
            job=self.job,
            step=self.step,
            asset=self.asset,
            details=details,
            user=self.user,
        )
