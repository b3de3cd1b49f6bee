"""Read-only answers from one snapshot of the rules in force (`PolicyView.reader`)."""

from __future__ import annotations

from mahiru.model.identifiers import Identifier, PartyId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.workflow import Job
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.permissions import JobPermissions, Permissions
from mahiru.policy.rules import InPartyCategory, ReleaseReviewedBy, Rule

__all__ = ["PolicyReader"]


class PolicyReader:
    """Read-only answers from one snapshot of the rules in force: nothing it says is audited.

    For explanations, dashboard pages and filtering what a reader sees; never
    for a decision that lets something happen (those go through
    `PolicyView.decide`, which records them).
    """

    __slots__ = ("_engine",)

    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine

    def rule_count(self) -> int:
        """How many distinct rules the answers are made from."""
        return len(self._engine.store)

    def rules(self) -> list[Rule]:
        """The rules the answers are made from."""
        return self._engine.store.rules()

    def job_permissions(self, job: Job) -> JobPermissions:
        """The permissions of every item of `job`."""
        return self._engine.job_permissions(job)

    def may_access(self, site: SiteId, permissions: Permissions, target: str) -> Decision:
        """Whether `site` may access something with `permissions` (named `target`)."""
        return self._engine.may_access(site, permissions, target)

    def may_use(self, party: PartyId, permissions: Permissions, target: str) -> Decision:
        """Whether `party` may use something with `permissions` (named `target`)."""
        return self._engine.may_use(party, permissions, target)

    def explain(
        self,
        job: Job,
        item: WorkflowItem,
        *,
        site: SiteId | None = None,
        party: PartyId | None = None,
    ) -> Decision:
        """The access (with `site`) or use (with `party`) decision for one item of `job`."""
        return self._engine.explain_item(job, item, site=site, party=party)

    def reviews_of(self, job: Job, item: WorkflowItem) -> tuple[ReleaseReviewedBy, ...]:
        """The ReleaseReviewedBy rules covering `item`'s result (`PolicyEngine.reviews_of`)."""
        return self._engine.reviews_of(job, item)

    def party_and_categories(self, party: PartyId) -> frozenset[Identifier]:
        """`party` and every party category it is in (InPartyCategory, transitively)."""
        return frozenset(self._engine.store.up(InPartyCategory, party))
