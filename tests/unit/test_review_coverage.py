"""Which ReleaseReviewedBy rules cover a workflow item's result, who may review under one,
and that review rules change no other decision (reference: Rules, ReleaseReviewedBy)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import World, jobs, worlds

from mahiru.errors import PermissionDenied
from mahiru.model.identifiers import PartyId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job
from mahiru.planner import plan_job
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.reviews import input_names
from mahiru.policy.rules import ReleaseReviewedBy, Rule, rule_from_dict
from mahiru.policy.store import RuleStore

DATA = "asset:p2.org:data:p2.org:site2"
OTHER = "asset:p3.org:other:p3.org:site3"
SCRIPT = "asset:p1.org:script:p1.org:site1"
BASE = "asset:p1.org:base:p1.org:site1"
RESULTS2 = "asset_collection:p2.org:results"
RESULTS1 = "asset_collection:p1.org:results"
ALICE = PartyId.parse("party:p2.org:alice")

#: prepare(in) -> combine(prepare.out) -> result; side(other) -> side_result. prepare.log
#: has an output base (p1's, which no result rule covers, so nobody may have that log).
JOB = job_from_dict(
    {
        "submitter": "party:p1.org:p1",
        "workflow": {
            "inputs": ["in", "other"],
            "outputs": {"result": "combine.out", "side_result": "side.out"},
            "steps": [
                {
                    "name": "prepare",
                    "compute_asset": SCRIPT,
                    "inputs": {"data": "in"},
                    "outputs": {"out": None, "log": BASE},
                },
                {
                    "name": "combine",
                    "compute_asset": SCRIPT,
                    "inputs": {"a": "prepare.out"},
                    "outputs": {"out": None},
                },
                {
                    "name": "side",
                    "compute_asset": SCRIPT,
                    "inputs": {"x": "other"},
                    "outputs": {"out": None},
                },
            ],
        },
        "inputs": {"in": DATA, "other": OTHER},
    }
)


def rule(type_name: str, **fields: Any) -> Rule:
    return rule_from_dict({"type": type_name, **fields})


def review(asset: str, reviewer: str = str(ALICE), **extra: Any) -> ReleaseReviewedBy:
    made = rule("ReleaseReviewedBy", asset=asset, reviewer=reviewer, **extra)
    assert isinstance(made, ReleaseReviewedBy)
    return made


def item(text: str, job: Job = JOB) -> WorkflowItem:
    return WorkflowItem.parse(text, job.workflow)


def engine(*rules: Rule) -> PolicyEngine:
    return PolicyEngine(RuleStore(rules))


# --- lineage ----------------------------------------------------------------------------


def test_items_derive_from_the_workflow_inputs_upstream_of_them() -> None:
    """Through every step before it; an output base derives from no input."""
    assert input_names(JOB, item("in")) == ("in",)
    assert input_names(JOB, item("prepare.data")) == ("in",)
    assert input_names(JOB, item("combine.a")) == ("in",)
    assert input_names(JOB, item("combine.out")) == ("in",)
    assert input_names(JOB, item("result")) == ("in",)
    assert input_names(JOB, item("side_result")) == ("other",)
    assert input_names(JOB, item("prepare")) == ("in",)
    assert input_names(JOB, item("prepare.@log")) == ()
    assert input_names(JOB, item("prepare.log")) == ("in",)


# --- reviews_of -------------------------------------------------------------------------


def test_a_review_of_an_input_covers_the_input_and_what_is_made_from_it() -> None:
    covering = review(DATA)
    decide = engine(covering)
    for text in ("in", "prepare.data", "prepare.out"):
        assert decide.reviews_of(JOB, item(text)) == (covering,), text


def test_a_review_of_an_input_covers_results_two_steps_on() -> None:
    """combine.out is made from prepare.out, which is made from the input."""
    covering = review(DATA)
    decide = engine(covering)
    assert decide.reviews_of(JOB, item("combine.out")) == (covering,)
    assert decide.reviews_of(JOB, item("result")) == (covering,)


def test_a_review_does_not_cover_results_of_other_data() -> None:
    decide = engine(review(DATA), review("asset_collection:p2.org:elsewhere"))
    assert decide.reviews_of(JOB, item("side_result")) == ()
    assert decide.reviews_of(JOB, item("side.out")) == ()
    assert decide.reviews_of(JOB, item("prepare.@log")) == ()
    assert decide.reviews_of(JOB, item("result")) == (review(DATA),)


def test_a_review_of_a_collection_covers_results_of_what_it_holds_transitively() -> None:
    """data is in `sensitive`, which is in `all`: reviews of either cover its results."""
    sensitive, everything = "asset_collection:p2.org:sensitive", "asset_collection:p2.org:all"
    decide = engine(
        rule("InAssetCollection", asset=DATA, collection=sensitive),
        rule("InAssetCollection", asset=sensitive, collection=everything),
        review(everything),
        review(sensitive),
    )
    assert decide.reviews_of(JOB, item("result")) == (review(everything), review(sensitive))
    assert decide.reviews_of(JOB, item("side_result")) == ()


def test_a_review_of_a_results_collection_covers_what_result_rules_put_there() -> None:
    """The data owner puts results of its data in `results`; a review of `results` covers
    them, though the data itself is not in that collection."""
    put_in_results = rule("ResultOfDataIn", data=DATA, compute="*", output="*", collection=RESULTS2)
    by_compute = rule(
        "ResultOfComputeIn", data="*", compute=SCRIPT, output="*", collection=RESULTS1
    )
    decide = engine(put_in_results, by_compute, review(RESULTS2))
    assert decide.reviews_of(JOB, item("prepare.out")) == (review(RESULTS2),)
    assert decide.reviews_of(JOB, item("result")) == ()  # combine's results go nowhere
    assert decide.reviews_of(JOB, item("in")) == ()  # the input is no result
    # side's results go only to p1's results collection, which no review names.
    assert decide.reviews_of(JOB, item("side.out")) == ()
    # Without the ResultOfDataIn rule nothing leads to the review.
    assert engine(by_compute, review(RESULTS2)).reviews_of(JOB, item("prepare.out")) == ()


def test_reviews_are_listed_once_in_a_fixed_order() -> None:
    """A rule reached by two paths is listed once; order is by asset, then rule id, however
    the rules were added."""
    sensitive = "asset_collection:p2.org:sensitive"
    rules: list[Rule] = [
        rule("InAssetCollection", asset=DATA, collection=sensitive),
        rule("InAssetCollection", asset=RESULTS2, collection=sensitive),
        rule("ResultOfDataIn", data=DATA, compute="*", output="*", collection=RESULTS2),
        rule("ResultOfComputeIn", data="*", compute=SCRIPT, output="*", collection=RESULTS1),
        review(sensitive),
        review(sensitive, "party_category:p2.org:stewards"),
        review(DATA, checks={"max_bytes": 10}),
    ]
    # prepare.out reaches `sensitive` from its input and from the results collection.
    permissions = engine(*rules).job_permissions(JOB)[item("prepare.out")]
    assert [RESULTS2] in [requirement.texts() for requirement in permissions]
    first = engine(*rules).reviews_of(JOB, item("prepare.out"))
    again = engine(*reversed(rules)).reviews_of(JOB, item("prepare.out"))
    assert first == again
    assert len(first) == 3 and len(set(first)) == 3
    assert [str(r.asset) for r in first] == [DATA, sensitive, sensitive]
    assert first[1].rule_id() < first[2].rule_id()


def test_a_revoked_review_no_longer_covers() -> None:
    covering = review(DATA)
    store = RuleStore([covering])
    decide = PolicyEngine(store)
    assert decide.reviews_of(JOB, item("result")) == (covering,)
    store.remove(covering)
    assert decide.reviews_of(JOB, item("result")) == ()


# --- may_review -------------------------------------------------------------------------


def test_the_named_reviewer_may_review() -> None:
    covering = review(DATA)
    decision = engine(covering).may_review(ALICE, covering)
    assert decision.allowed
    assert decision.headline() == f"{ALICE} may review results of {DATA}"
    assert decision.rule_ids() == [covering.rule_id()]


def test_a_member_of_the_reviewer_category_may_review_through_the_chain() -> None:
    """alice is in `analysts`, which is in `stewards`: the explanation shows the chain."""
    stewards, analysts = "party_category:p2.org:stewards", "party_category:p2.org:analysts"
    covering = review(DATA, stewards)
    member = rule("InPartyCategory", party=str(ALICE), category=analysts)
    nested = rule("InPartyCategory", party=analysts, category=stewards)
    decision = engine(covering, member, nested).may_review(ALICE, covering)
    assert decision.allowed
    assert decision.outcomes[0].chain == (covering, member, nested)
    assert f"{covering} -> {member} -> {nested}" in decision.explain()
    assert decision.rule_ids() == sorted(r.rule_id() for r in (covering, member, nested))


def test_anyone_else_may_not_review_and_is_told_why() -> None:
    stewards = "party_category:p2.org:stewards"
    covering = review(DATA, stewards)
    bob = PartyId.parse("party:p2.org:bob")
    decision = engine(
        covering,
        rule("InPartyCategory", party=stewards, category="party_category:p2.org:x"),
    ).may_review(bob, covering)
    assert not decision.allowed
    assert decision.failures() == [
        f"{bob} may not review results of {DATA}: the reviewer is {stewards},"
        f" and {bob} is neither it nor in it"
    ]
    assert decision.to_dict()["allowed"] is False


def test_a_reviewer_category_cycle_ends() -> None:
    a, b = "party_category:p2.org:a", "party_category:p2.org:b"
    covering = review(DATA, b)
    decide = engine(
        covering,
        rule("InPartyCategory", party=a, category=b),
        rule("InPartyCategory", party=b, category=a),
        rule("InPartyCategory", party=str(ALICE), category=a),
    )
    assert decide.may_review(ALICE, covering).allowed
    assert not decide.may_review(PartyId.parse("party:p2.org:bob"), covering).allowed


def test_a_review_rule_not_in_force_lets_nobody_review() -> None:
    """A rule the engine does not hold (never added, or revoked) grants nothing."""
    covering = review(DATA)
    decision = engine(review(OTHER)).may_review(ALICE, covering)
    assert not decision.allowed
    assert decision.note == f"{covering} is not in force here"


# --- review rules change no other decision ----------------------------------------------


@st.composite
def worlds_jobs_and_reviews(draw: st.DrawFn) -> tuple[World, Job, list[Rule]]:
    world = draw(worlds(min_openness=2))
    job = draw(jobs(world))
    reviewers = [*world.parties, *world.party_categories]
    reviews: list[Rule] = [
        ReleaseReviewedBy(asset, draw(st.sampled_from(reviewers)))
        for asset in [*world.data_assets, *world.compute_assets, *world.collections]
    ]
    return world, job, reviews


@settings(max_examples=150, deadline=None)
@given(worlds_jobs_and_reviews())
def test_review_rules_change_no_access_use_or_planning_decision(
    case: tuple[World, Job, list[Rule]],
) -> None:
    """The same permissions, item decisions, job decision and plan with a review rule on
    every asset and collection as without."""
    world, job, reviews = case
    without = PolicyEngine(RuleStore(world.rules))
    with_reviews = PolicyEngine(RuleStore([*world.rules, *reviews]))
    before, after = without.job_permissions(job), with_reviews.job_permissions(job)
    assert dict(before.items()) == dict(after.items())
    for it in before.items():
        for site in world.site_ids:
            assert (
                without.may_access(site, before[it], str(it)).to_dict()
                == with_reviews.may_access(site, after[it], str(it)).to_dict()
            )
        for party in world.parties:
            assert (
                without.may_use(party, before[it], str(it)).to_dict()
                == with_reviews.may_use(party, after[it], str(it)).to_dict()
            )
    submitter_site = world.submitter_site(job.submitter)
    plan = {step: world.site_ids[0] for step in job.workflow.steps}
    assert (
        without.check_job(before, plan, submitter_site).to_dict()
        == with_reviews.check_job(after, plan, submitter_site).to_dict()
    )
    assert _plan_or_denial(job, world, without) == _plan_or_denial(job, world, with_reviews)


def _plan_or_denial(job: Job, world: World, decide: PolicyEngine) -> object:
    try:
        return plan_job(job, world.sites, decide)
    except PermissionDenied as denied:
        return denied.details


def test_an_item_of_each_kind_can_be_asked_about() -> None:
    """reviews_of answers for every item of a job, never failing on its kind."""
    decide = engine(review(DATA))
    kinds = set()
    for it in decide.job_permissions(JOB).items():
        decide.reviews_of(JOB, it)
        kinds.add(it.kind)
    assert kinds == set(ItemKind)
