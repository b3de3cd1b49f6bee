"""The policy engine decides exactly as the reference evaluator of the policy semantics."""

from __future__ import annotations

from math import comb

import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import World, jobs, long_chains, worlds

from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.workflow import Job
from mahiru.policy.decisions import Decision
from mahiru.policy.permissions import Permissions
from mahiru.policy.rules import MayAccess, MayUse

SETTINGS = settings(max_examples=300, deadline=None)


def minimal(requirements: ref.Permissions) -> set[ref.Requirement]:
    """The requirements not implied by a smaller one: what normalising must keep."""
    return {r for r in requirements if not any(other < r for other in requirements)}


def id_sets(permissions: Permissions) -> list[ref.Requirement]:
    return [frozenset(requirement.ids) for requirement in permissions]


def check_chains(decision: Decision, world: World) -> None:
    """Every met requirement is explained by rules of the world, with one grant."""
    for outcome in decision.outcomes:
        if outcome.chain is not None:
            assert set(outcome.chain) <= set(world.rules)
            assert sum(isinstance(rule, MayAccess | MayUse) for rule in outcome.chain) == 1


@st.composite
def worlds_and_jobs(draw: st.DrawFn) -> tuple[World, Job]:
    world = draw(worlds())
    return world, draw(jobs(world))


@SETTINGS
@given(worlds_and_jobs())
def test_every_item_decision_matches_the_reference(case: tuple[World, Job]) -> None:
    """Access for every site and use for every party, for every item, as the reference says."""
    world, job = case
    engine, rules = world.engine(), list(world.rules)
    permissions = engine.job_permissions(job)
    expected = ref.job_permissions(rules, job)
    assert set(permissions.items()) == set(expected)  # every item the reference has
    for item in permissions.items():
        for site in world.site_ids:
            decision = engine.may_access(site, permissions[item], str(item))
            assert decision.allowed == ref.may_access(rules, site, expected[item]), (site, item)
            check_chains(decision, world)
        for party in world.parties:
            decision = engine.may_use(party, permissions[item], str(item))
            assert decision.allowed == ref.may_use(rules, party, expected[item]), (party, item)
            check_chains(decision, world)


@SETTINGS
@given(worlds_and_jobs())
def test_permissions_are_the_normalised_reference_permissions(case: tuple[World, Job]) -> None:
    """The engine keeps exactly the minimal reference requirements: no duplicate, no superset."""
    world, job = case
    permissions = world.engine().job_permissions(job)
    expected = ref.job_permissions(list(world.rules), job)
    assert set(permissions.items()) == set(expected)  # every item the reference has
    for item in permissions.items():
        kept = id_sets(permissions[item])
        assert len(set(kept)) == len(kept), item
        assert not any(a < b for a in kept for b in kept), item
        assert set(kept) == minimal(expected[item]), item


@SETTINGS
@given(worlds_and_jobs())
def test_step_decisions_match_the_reference(case: tuple[World, Job]) -> None:
    """A step may run at a site exactly when the reference says so."""
    world, job = case
    engine = world.engine()
    permissions = engine.job_permissions(job)
    for step in job.workflow.steps:
        for site in world.site_ids:
            decision = engine.may_run_step(permissions, step, site)
            assert decision.allowed == ref.step_may_run_at(list(world.rules), job, step, site)


@SETTINGS
@given(st.data())
def test_job_decisions_match_the_reference(data: st.DataObject) -> None:
    """A job with a plan is permitted exactly when the reference says so."""
    world, job = data.draw(worlds_and_jobs())
    plan = {step: data.draw(st.sampled_from(world.site_ids)) for step in job.workflow.steps}
    submitter_site = world.submitter_site(job.submitter)
    engine, rules = world.engine(), list(world.rules)
    permissions = engine.job_permissions(job)
    assert engine.may_receive_outputs(permissions, submitter_site).allowed == (
        ref.outputs_deliverable(rules, job, submitter_site)
    )
    assert engine.check_job(permissions, plan, submitter_site).allowed == (
        ref.job_permitted(rules, job, plan, submitter_site)
    )


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_permissions_stay_small_in_a_200_step_chain(data: st.DataObject) -> None:
    """Output permissions of a deep chain are the minimal reference ones, and stay small."""
    world = data.draw(worlds())
    job = data.draw(long_chains(world, 200))
    permissions = world.engine().job_permissions(job)
    expected = ref.job_permissions(list(world.rules), job)
    # Every output requirement is a set of collections, and normalised permissions
    # are an antichain of such sets: Sperner bounds their number.
    n = len(world.collections)
    for name in job.workflow.steps:
        item = WorkflowItem(ItemKind.STEP_OUTPUT, name, "out0")
        assert len(permissions[item]) <= comb(n, n // 2)
        assert set(id_sets(permissions[item])) == minimal(expected[item])
