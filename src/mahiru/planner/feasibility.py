"""Which sites may run each step, or why no plan can exist (reference: Policy semantics, Planner).

Permissions depend only on the job, never on the plan, so whether a site may
run a step is decided per step and site, once. A plan exists iff every step
has at least one candidate and the submitter may receive the workflow
outputs at its own site; otherwise the denial says, per infeasible step, why
each site was excluded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from mahiru.errors import InvalidInput, PermissionDenied
from mahiru.model.assets import SiteDescription, submitter_site
from mahiru.model.identifiers import SiteId
from mahiru.model.workflow import Job
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.permissions import JobPermissions

NO_RUNNER = "site has no runner"
_NAMED_IN_MESSAGE = 5


@dataclass(frozen=True, slots=True)
class PlanDenied:
    """Why a job cannot be planned: per infeasible step, each site's reasons.

    `steps` maps each step that no site may run to {site id text: reasons};
    `outputs` lists why the submitter may not receive the workflow outputs
    (empty if it may).
    """

    message: str
    steps: Mapping[str, Mapping[str, tuple[str, ...]]]
    outputs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: {"steps": {step: {site: [reason, ...]}}, "outputs": [reason, ...]}."""
        return {
            "steps": {
                step: {site: list(reasons) for site, reasons in sites.items()}
                for step, sites in self.steps.items()
            },
            "outputs": list(self.outputs),
        }

    def explain(self) -> str:
        """Human text: the message, then each step, site and reason, indented."""
        lines = [self.message]
        for step, sites in self.steps.items():
            lines.append(f"  step {step!r}:")
            for site, reasons in sites.items():
                lines.append(f"    {site}:")
                lines.extend(f"      {reason}" for reason in reasons)
        if self.outputs:
            lines.append("  workflow outputs:")
            lines.extend(f"    {reason}" for reason in self.outputs)
        return "\n".join(lines)

    def error(self) -> NoPermittedPlan:
        """This denial as the error the planner raises."""
        return NoPermittedPlan(self)


class NoPermittedPlan(PermissionDenied):
    """No plan satisfies the policies; `denial` holds the structured reasons."""

    def __init__(self, denial: PlanDenied) -> None:
        super().__init__(denial.message, denial.to_dict())
        self.denial = denial


@dataclass(frozen=True, slots=True)
class Candidates:
    """The sites that may run each step (sorted by id text), and the submitter's site."""

    sites: Mapping[str, tuple[SiteId, ...]]
    submitter_site: SiteId


def _sorted_sites(sites: Sequence[SiteDescription]) -> list[SiteDescription]:
    """Sites by id text, rejecting duplicate ids."""
    ordered = sorted(sites, key=lambda site: str(site.id))
    duplicates = sorted({str(a.id) for a, b in pairwise(ordered) if a.id == b.id})
    if duplicates:
        raise InvalidInput(f"duplicate site ids: {', '.join(duplicates)}", {"sites": duplicates})
    return ordered


def find_candidates(
    job: Job,
    sites: Sequence[SiteDescription],
    engine: PolicyEngine,
    permissions: JobPermissions | None = None,
) -> Candidates | PlanDenied:
    """The candidate sites of every step, or the denial if some step has none.

    `permissions` may be passed if already computed for `job`. Raises
    InvalidInput if the submitter owns no site with a store, or if two sites
    share an id.
    """
    ordered = _sorted_sites(sites)
    home = submitter_site(ordered, job.submitter).id
    if permissions is not None and permissions.job != job:
        raise ValueError("the permissions given were computed for another job")
    perms = permissions if permissions is not None else engine.job_permissions(job)
    runners = [site for site in ordered if site.runner]
    runner_ids = [site.id for site in runners]
    candidates: dict[str, tuple[SiteId, ...]] = {}
    infeasible: dict[str, dict[str, tuple[str, ...]]] = {}
    for step in job.workflow.topological_order():
        allowed = tuple(engine.sites_that_may_run(perms, step, runner_ids))
        if allowed:
            candidates[step] = allowed
            continue
        # Explanations are built only for the steps nobody may run.
        decisions = [(site, engine.may_run_step(perms, step, site.id)) for site in runners]
        reasons = {str(site.id): tuple(decision.failures()) for site, decision in decisions}
        for site in ordered:
            if not site.runner:
                reasons[str(site.id)] = (NO_RUNNER,)
        infeasible[step] = dict(sorted(reasons.items()))
    receive = engine.may_receive_outputs(perms, home)
    if not infeasible and receive.allowed:
        return Candidates(candidates, home)
    steps = dict(sorted(infeasible.items()))
    return PlanDenied(
        _message(job, list(steps), receive.allowed, home), steps, tuple(receive.failures())
    )


def _message(job: Job, steps: list[str], may_receive: bool, home: SiteId) -> str:
    """One line naming what blocks the plan."""
    parts: list[str] = []
    if steps:
        named = ", ".join(repr(step) for step in steps[:_NAMED_IN_MESSAGE])
        more = len(steps) - _NAMED_IN_MESSAGE
        if more > 0:
            named += f" and {more} more"
        parts.append(f"no site may run step{'s' if len(steps) > 1 else ''} {named}")
    if not may_receive:
        parts.append(f"{job.submitter} may not receive the workflow outputs at {home}")
    return "; ".join(parts)
