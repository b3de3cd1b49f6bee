"""The policy engine: every access, use, step and job decision is made here.

See docs/reference.md, "Policy semantics".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mahiru.model.identifiers import WILDCARD, Identifier, PartyId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.workflow import Job
from mahiru.policy.decisions import Decision, RequirementOutcome
from mahiru.policy.permissions import JobPermissions, Permissions, Requirement
from mahiru.policy.reviews import covering_reviews, reviewer_decision
from mahiru.policy.rules import (
    InAssetCollection,
    InPartyCategory,
    InSiteCategory,
    MayAccess,
    MayUse,
    ReleaseReviewedBy,
    Rule,
)
from mahiru.policy.store import GroupingRule, RuleStore

Chain = tuple[Rule, ...] | None


class PolicyEngine:
    """Decides from the rules in a RuleStore; holds no other state than caches.

    Caches are keyed by the store's version, so adding or removing rules is
    seen by the next decision.
    """

    def __init__(self, store: RuleStore) -> None:
        self.store = store
        self._chains: dict[tuple[str, Identifier, frozenset[Identifier]], Chain] = {}
        # The last job asked about, with its permissions: callers ask item by item
        # (`reviews_of`, `explain_item`), and each ask would otherwise recompute them all.
        self._last_job: tuple[Job, JobPermissions] | None = None
        self._version = store.version

    def _fresh(self) -> None:
        if self._version != self.store.version:
            self._chains.clear()
            self._last_job = None
            self._version = self.store.version

    # -- permissions ---------------------------------------------------------

    def job_permissions(self, job: Job) -> JobPermissions:
        """The permissions of every item of `job` (computed once per job and rule change)."""
        self._fresh()
        last = self._last_job
        if last is not None and last[0] is job:
            return last[1]
        permissions = JobPermissions(job, self.store)
        self._last_job = (job, permissions)
        return permissions

    # -- leaf decisions ----------------------------------------------------------

    def _chain(self, verb: str, subject: SiteId | PartyId, ids: frozenset[Identifier]) -> Chain:
        """The first rule chain granting `subject` one of `ids`, or None.

        verb "access" follows MayAccess and site categories; "use" follows
        MayUse and party categories. The chain lists the asset's grouping
        rules, the grant, then the subject's grouping rules.
        """
        key = (verb, subject, ids)
        if key in self._chains:
            return self._chains[key]
        store = self.store
        subject_kind: type[GroupingRule] = InSiteCategory if verb == "access" else InPartyCategory
        subject_groups = store.up(subject_kind, subject)
        found: Chain = None
        for x in sorted(ids, key=str):
            for y, asset_path in store.up(InAssetCollection, x).items():
                grants: Sequence[MayAccess] | Sequence[MayUse]
                grants = (
                    store.indexed(MayAccess, y) if verb == "access" else store.indexed(MayUse, y)
                )
                for rule in grants:
                    who = rule.site if isinstance(rule, MayAccess) else rule.party
                    if who is WILDCARD:
                        found = (*asset_path, rule)
                    elif who in subject_groups:
                        found = (*asset_path, rule, *subject_groups[who])
                    if found is not None:
                        self._chains[key] = found
                        return found
        self._chains[key] = None
        return None

    def may_access(self, site: SiteId, permissions: Permissions, target: str) -> Decision:
        """May `site` access something with these permissions?"""
        return self._decide("access", site, permissions, target, "MayAccess")

    def may_use(self, party: PartyId, permissions: Permissions, target: str) -> Decision:
        """May `party` use something with these permissions?"""
        return self._decide("use", party, permissions, target, "MayUse")

    def _decide(
        self,
        verb: str,
        subject: SiteId | PartyId,
        permissions: Permissions,
        target: str,
        rule_type: str,
    ) -> Decision:
        """Whether `subject` meets every requirement of `permissions` (`rule_type` grants it)."""
        self._fresh()
        outcomes = tuple(
            RequirementOutcome(r, self._chain(verb, subject, r.ids), rule_type) for r in permissions
        )
        return Decision(all(o.met for o in outcomes), str(subject), verb, target, outcomes)

    # -- composite decisions ----------------------------------------------------

    def may_run_step(self, permissions: JobPermissions, step: str, site: SiteId) -> Decision:
        """May `step` run at `site`: access to its inputs, compute asset, bases and outputs."""
        workflow = permissions.job.workflow
        spec = workflow.steps[step]
        items = [
            *(WorkflowItem(ItemKind.STEP_INPUT, step, name) for name in spec.inputs),
            WorkflowItem(ItemKind.STEP, step),
        ]
        for output in spec.outputs:
            items.append(WorkflowItem(ItemKind.OUTPUT_BASE, step, output))
            items.append(WorkflowItem(ItemKind.STEP_OUTPUT, step, output))
        parts = tuple(self.may_access(site, permissions[item], str(item)) for item in items)
        return Decision.all_of(str(site), "run step", step, parts)

    def step_requirements(self, permissions: JobPermissions, step: str) -> list[Requirement]:
        """The distinct requirements a site must meet to run `step` (for fast checks)."""
        spec = permissions.job.workflow.steps[step]
        items = [
            *(WorkflowItem(ItemKind.STEP_INPUT, step, name) for name in spec.inputs),
            WorkflowItem(ItemKind.STEP, step),
        ]
        for output in spec.outputs:
            items.append(WorkflowItem(ItemKind.OUTPUT_BASE, step, output))
            items.append(WorkflowItem(ItemKind.STEP_OUTPUT, step, output))
        return list({r: None for item in items for r in permissions[item]})

    def sites_that_may_run(
        self, permissions: JobPermissions, step: str, sites: list[SiteId]
    ) -> list[SiteId]:
        """The subset of `sites` that may run `step`, in the given order.

        Equivalent to filtering by `may_run_step(...).allowed`, without
        building explanations: the planner's hot path.
        """
        self._fresh()
        requirements = self.step_requirements(permissions, step)
        return [
            site
            for site in sites
            if all(self._chain("access", site, r.ids) is not None for r in requirements)
        ]

    def may_receive_outputs(self, permissions: JobPermissions, submitter_site: SiteId) -> Decision:
        """May the submitter use every workflow output, delivered to its own site?"""
        job = permissions.job
        parts: list[Decision] = []
        for name in job.workflow.outputs:
            item = WorkflowItem(ItemKind.WORKFLOW_OUTPUT, name)
            parts.append(self.may_use(job.submitter, permissions[item], name))
            parts.append(self.may_access(submitter_site, permissions[item], name))
        return Decision.all_of(str(job.submitter), "receive", "the workflow outputs", tuple(parts))

    def check_job(
        self, permissions: JobPermissions, plan: Mapping[str, SiteId], submitter_site: SiteId
    ) -> Decision:
        """Is the job permitted with this plan (reference: Policy semantics, last bullet)?"""
        parts = [
            self.may_run_step(permissions, step, plan[step])
            for step in permissions.job.workflow.topological_order()
        ]
        parts.append(self.may_receive_outputs(permissions, submitter_site))
        return Decision.all_of(str(permissions.job.submitter), "run", "the job", tuple(parts))

    def explain_item(
        self,
        job: Job,
        item: WorkflowItem,
        *,
        site: SiteId | None = None,
        party: PartyId | None = None,
    ) -> Decision:
        """The access (with `site`) or use (with `party`) decision for one item."""
        permissions = self.job_permissions(job)[item]
        if site is not None:
            return self.may_access(site, permissions, str(item))
        if party is not None:
            return self.may_use(party, permissions, str(item))
        raise ValueError("explain_item needs a site or a party")

    # -- reviews of results before they leave -------------------------------------

    def reviews_of(self, job: Job, item: WorkflowItem) -> tuple[ReleaseReviewedBy, ...]:
        """The ReleaseReviewedBy rules covering `item`'s result (see `policy/reviews.py`):
        those naming an input it derives from, or an id its permissions require, or a
        collection holding either. Sorted by the asset they name, then by rule id."""
        return covering_reviews(self.store, job, item, self.job_permissions(job)[item])

    def may_review(self, party: PartyId, rule: ReleaseReviewedBy) -> Decision:
        """May `party` review what `rule` covers: it is the reviewer or in the reviewer
        category, and `rule` is in force (in this engine's store)."""
        return reviewer_decision(self.store, party, rule)


def requirement_texts(permissions: Permissions) -> list[list[str]]:
    """Permissions as sorted lists of id texts (for JSON and tests)."""
    return [r.texts() for r in permissions]


__all__ = ["PolicyEngine", "Requirement", "requirement_texts"]
