"""The planner against brute force over every plan, judged by the reference evaluator."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import reference as ref
from hypothesis import event, given, settings
from hypothesis import strategies as st
from strategies import World, jobs, worlds

from mahiru.model.identifiers import AssetId, ResultId, SiteId
from mahiru.model.workflow import Job, Plan
from mahiru.planner import NoPermittedPlan, PlanDenied, Sizes, plan_cost, plan_job
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.store import RuleStore

SETTINGS = settings(max_examples=250, deadline=None)


@dataclass(frozen=True)
class Case:
    """A world, a job in it and the sizes the planner is told."""

    world: World
    job: Job
    sizes: Sizes | None

    @property
    def submitter_site(self) -> SiteId:
        return self.world.submitter_site(self.job.submitter)

    @property
    def runners(self) -> list[SiteId]:
        return [site.id for site in self.world.sites if site.runner]

    def plan(self, engine: PolicyEngine | None = None) -> Plan | PlanDenied:
        """The planner's plan, or its denial if it finds no permitted plan."""
        try:
            return plan_job(self.job, self.world.sites, engine or self.world.engine(), self.sizes)
        except NoPermittedPlan as error:
            return error.denial

    def cost(self, plan: Plan | dict[str, SiteId]) -> int:
        return plan_cost(self.job, plan, self.submitter_site, self.sizes)


@st.composite
def cases(draw: st.DrawFn, shape: str, max_steps: int = 5) -> Case:
    world = draw(worlds(min_openness=2))
    job = draw(jobs(world, shape, max_steps))
    sizes: dict[AssetId | ResultId, int] | None = None
    if draw(st.booleans()):
        things = [*world.data_assets, *world.compute_assets, *job.result_ids().values()]
        sizes = {thing: draw(st.integers(0, 100)) for thing in things if draw(st.booleans())}
    return Case(world, job, sizes)


def reference_sites(case: Case) -> dict[str, list[SiteId]]:
    """For each step, the runner sites the reference lets it run at."""
    rules = list(case.world.rules)
    return {
        step: [site for site in case.runners if ref.step_may_run_at(rules, case.job, step, site)]
        for step in case.job.workflow.steps
    }


def permitted_plans(case: Case) -> list[dict[str, SiteId]]:
    """Every assignment of runner sites to steps that the reference permits.

    job_permitted is a conjunction over the steps and the outputs, so it is
    evaluated through the per-step answers rather than anew for each of the
    (up to 4**5) assignments.
    """
    if not ref.outputs_deliverable(list(case.world.rules), case.job, case.submitter_site):
        return []
    allowed = reference_sites(case)
    steps = list(case.job.workflow.steps)
    return [
        dict(zip(steps, choice, strict=True))
        for choice in itertools.product(case.runners, repeat=len(steps))
        if all(site in allowed[step] for step, site in zip(steps, choice, strict=True))
    ]


def check_denial(case: Case, denial: PlanDenied) -> None:
    """The denial names exactly the steps no site may run, each with every site's reasons,
    and says why the outputs may not be delivered exactly when they may not."""
    infeasible = {step for step, sites in reference_sites(case).items() if not sites}
    assert set(denial.steps) == infeasible
    for step in infeasible:
        assert set(denial.steps[step]) == {str(site.id) for site in case.world.sites}
        assert all(denial.steps[step].values())
    deliverable = ref.outputs_deliverable(list(case.world.rules), case.job, case.submitter_site)
    assert bool(denial.outputs) == (not deliverable)


def check_against_brute_force(case: Case, *, exact: bool) -> None:
    plans = permitted_plans(case)
    plan = case.plan()
    if isinstance(plan, PlanDenied):
        assert not plans, "the planner found no plan, but brute force did"
        check_denial(case, plan)
        return
    event("permitted")
    assert plans, "the planner returned a plan, but brute force finds none permitted"
    assert set(plan.assignments) == set(case.job.workflow.steps)
    assert set(plan.assignments.values()) <= set(case.runners)
    rules = list(case.world.rules)
    assert ref.job_permitted(rules, case.job, plan.assignments, case.submitter_site)
    best = min(case.cost(p) for p in plans)
    cost = case.cost(plan)
    if exact:
        assert cost == best
    else:
        assert cost >= best
        event("heuristic above the optimum" if cost > best else "heuristic optimal")


@SETTINGS
@given(cases("chain"))
def test_chain_plans_are_permitted_and_cheapest(case: Case) -> None:
    """For chains, a plan exists iff one is permitted, and it is a cheapest one."""
    check_against_brute_force(case, exact=True)


@SETTINGS
@given(cases("tree"))
def test_in_tree_plans_are_permitted_and_cheapest(case: Case) -> None:
    """For in-trees, a plan exists iff one is permitted, and it is a cheapest one."""
    check_against_brute_force(case, exact=True)


@SETTINGS
@given(cases("dag"))
def test_dag_plans_are_permitted_and_no_cheaper_than_possible(case: Case) -> None:
    """For general DAGs, a plan exists iff one is permitted, and it costs at least the minimum."""
    check_against_brute_force(case, exact=False)


@SETTINGS
@given(st.data())
def test_the_same_input_gives_the_same_plan(data: st.DataObject) -> None:
    """Planning twice, with sites and rules listed in any order, gives the same plan."""
    case = data.draw(cases("dag"))
    plan = case.plan()
    assert case.plan() == plan
    sites = tuple(data.draw(st.permutations(case.world.sites)))
    rules = tuple(data.draw(st.permutations(case.world.rules)))
    shuffled = replace(case, world=replace(case.world, sites=sites, rules=rules))
    assert shuffled.plan(PolicyEngine(RuleStore(rules))) == plan


@SETTINGS
@given(cases("chain", max_steps=1))
def test_ties_go_to_the_smallest_site_id(case: Case) -> None:
    """A one-step job goes to the cheapest permitted site, the first by id among equals."""
    plans = permitted_plans(case)
    plan = case.plan()
    if isinstance(plan, PlanDenied):
        assert not plans
        return
    (step,) = case.job.workflow.steps
    best = min(case.cost(p) for p in plans)
    cheapest = sorted(str(p[step]) for p in plans if case.cost(p) == best)
    assert str(plan[step]) == cheapest[0]
