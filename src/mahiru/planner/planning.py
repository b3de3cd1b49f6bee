"""Planning a job: candidates from the policy engine, then the cheapest plan.

See docs/reference.md, "Planner".
"""

from __future__ import annotations

from collections.abc import Sequence

from mahiru.model.assets import SiteDescription
from mahiru.model.workflow import Job, Plan
from mahiru.planner.costs import CostModel, Sizes
from mahiru.planner.feasibility import PlanDenied, find_candidates
from mahiru.planner.search import minimise
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.permissions import JobPermissions


def plan_job(
    job: Job,
    sites: Sequence[SiteDescription],
    engine: PolicyEngine,
    sizes: Sizes | None = None,
    *,
    permissions: JobPermissions | None = None,
) -> Plan:
    """The plan that the policies permit and that moves the fewest bytes.

    Each step goes to a runner site that may run it; among such plans the
    cost of `costs` is minimised (exactly when the step graph is a forest,
    heuristically otherwise; see `search`). The same inputs always give the
    same plan, with ties going to the smallest site id. `permissions` may be
    passed if already computed for `job` with `engine`.

    Raises NoPermittedPlan (a PermissionDenied whose `details` and `denial`
    say, per infeasible step, why each site was excluded) if no plan is
    permitted, and InvalidInput if the submitter owns no site with a store.
    """
    found = find_candidates(job, sites, engine, permissions)
    if isinstance(found, PlanDenied):
        raise found.error()
    steps = job.workflow.topological_order()
    site_ids = tuple(
        sorted({site for allowed in found.sites.values() for site in allowed}, key=str)
    )
    index = {site: k for k, site in enumerate(site_ids)}
    model = CostModel.build(job, steps, site_ids, found.submitter_site, sizes)
    candidates = [[index[site] for site in found.sites[step]] for step in steps]
    assignment = minimise(model, candidates)
    return Plan({step: site_ids[k] for step, k in zip(steps, assignment, strict=True)})
