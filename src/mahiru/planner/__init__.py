"""The planner: which site runs each step of a job (reference: Planner). Pure: no I/O.

`plan_job` returns the permitted plan that moves the fewest bytes, or raises
NoPermittedPlan carrying a PlanDenied that explains, per step, why each site
was excluded. `plan_cost` is the cost it minimises (see `costs`).
"""

from mahiru.planner.costs import Sizes, plan_cost
from mahiru.planner.feasibility import (
    NO_RUNNER,
    Candidates,
    NoPermittedPlan,
    PlanDenied,
    find_candidates,
)
from mahiru.planner.planning import plan_job

__all__ = [
    "NO_RUNNER",
    "Candidates",
    "NoPermittedPlan",
    "PlanDenied",
    "Sizes",
    "find_candidates",
    "plan_cost",
    "plan_job",
]
