"""A rule store changed rule by rule decides exactly as one built from scratch from its rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import World, jobs, worlds

from mahiru.errors import PermissionDenied
from mahiru.model.workflow import Job
from mahiru.planner import plan_job
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.rules import ReleaseReviewedBy, Rule
from mahiru.policy.store import RuleStore

SETTINGS = settings(max_examples=100, deadline=None)


def every_decision(engine: PolicyEngine, world: World, job: Job) -> list[object]:
    """Every answer the engine gives about `job` in `world`, in a fixed order."""
    permissions = engine.job_permissions(job)
    answers: list[object] = []
    for item in sorted(permissions.items(), key=str):
        answers.append(permissions[item])
        answers.extend(engine.may_access(s, permissions[item], str(item)) for s in world.site_ids)
        answers.extend(engine.may_use(p, permissions[item], str(item)) for p in world.parties)
        answers.append(reviews := engine.reviews_of(job, item))
        answers.extend(engine.may_review(p, rule) for rule in reviews for p in world.parties)
    for step in job.workflow.steps:
        answers.append(engine.sites_that_may_run(permissions, step, list(world.site_ids)))
        answers.extend(engine.may_run_step(permissions, step, s) for s in world.site_ids)
    answers.append(engine.may_receive_outputs(permissions, world.submitter_site(job.submitter)))
    try:
        answers.append(plan_job(job, world.sites, engine))
    except PermissionDenied as denied:
        answers.append(("denied", denied.message))
    return answers


def review_rules(world: World) -> list[ReleaseReviewedBy]:
    return [rule for rule in world.rules if isinstance(rule, ReleaseReviewedBy)]


@st.composite
def changes(draw: st.DrawFn) -> tuple[World, Job, list[tuple[bool, list[Rule]]]]:
    """A world, a job, and a sequence of changes: (add?, rules) over the world's rules."""
    world = draw(worlds())
    job = draw(jobs(world))
    rules = st.lists(st.sampled_from(world.rules), max_size=4) if world.rules else st.just([])
    steps = draw(st.lists(st.tuples(st.booleans(), rules), max_size=12))
    return world, job, steps


@SETTINGS
@given(changes())
def test_a_changed_store_decides_as_one_rebuilt_from_its_rules(
    case: tuple[World, Job, list[tuple[bool, list[Rule]]]],
) -> None:
    """After each add or revoke, every decision kind equals that of a store built afresh."""
    world, job, steps = case
    store = RuleStore(world.rules[: len(world.rules) // 2])
    model: dict[Rule, None] = dict.fromkeys(world.rules[: len(world.rules) // 2])
    for adding, rules in steps:
        before = store.rules()
        changed = store.changed(added=rules) if adding else store.changed(removed=rules)
        for rule in rules:
            if adding:
                model.setdefault(rule)
            else:
                model.pop(rule, None)
        assert store.rules() == before  # the old store is left as it was
        store = changed
        assert store.rules() == list(model)
        fresh = PolicyEngine(RuleStore(model))
        assert every_decision(PolicyEngine(store), world, job) == every_decision(fresh, world, job)
        for rule in review_rules(world):
            assert (rule in store) == (rule in model)


@SETTINGS
@given(changes())
def test_a_store_changed_in_place_decides_as_one_rebuilt_from_its_rules(
    case: tuple[World, Job, list[tuple[bool, list[Rule]]]],
) -> None:
    """`add` and `remove` keep an engine over the store deciding like one over a fresh store."""
    world, job, steps = case
    store = RuleStore()
    engine = PolicyEngine(store)
    model: dict[Rule, None] = {}
    for adding, rules in steps:
        every_decision(engine, world, job)  # warm the caches the change must clear
        for rule in rules:
            if adding:
                store.add(rule)
                model.setdefault(rule)
            else:
                store.remove(rule)
                model.pop(rule, None)
        fresh = PolicyEngine(RuleStore(model))
        assert every_decision(engine, world, job) == every_decision(fresh, world, job)


def test_a_changed_store_leaves_the_store_it_came_from_deciding_as_before() -> None:
    """Decisions still using the old store see none of the change (copy on write)."""
    from mahiru.model.identifiers import AssetId, PartyId
    from mahiru.policy.rules import MayUse

    asset = AssetId.parse("asset:p1.org:d:p1.org:s")
    party = PartyId("p1.org", "p1")
    grant = MayUse(party, asset, "for testing")
    old = RuleStore()
    new = old.changed(added=[grant])
    assert list(new.indexed(MayUse, asset)) == [grant]
    assert list(old.indexed(MayUse, asset)) == []
    assert list(new.changed(removed=[grant]).indexed(MayUse, asset)) == []
    assert list(new.indexed(MayUse, asset)) == [grant]
