"""The planner: permitted sites only, fewest bytes moved, deterministic, and explained denials."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from mahiru.errors import InvalidInput, PermissionDenied
from mahiru.model.assets import SiteDescription
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.serialization import job_from_dict, site_from_dict
from mahiru.model.workflow import Job, Plan, Source, StepOutputRef, Workflow, WorkflowStep
from mahiru.planner import (
    NO_RUNNER,
    Candidates,
    NoPermittedPlan,
    PlanDenied,
    find_candidates,
    plan_cost,
    plan_job,
)
from mahiru.planner.costs import CostModel, Sizes
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.store import RuleStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compute_to_data"
SITE1 = "site:party1.mahiru.example.org:site1"
SITE2 = "site:party2.mahiru.example.org:site2"

NS = "p.example.org"
SUBMITTER = PartyId(NS, "submitter")
OTHER = PartyId(NS, "other")
RESULTS = f"asset_collection:{NS}:results"


# -- building blocks -----------------------------------------------------------


def site_id(name: str) -> SiteId:
    return SiteId(NS, name)


def asset(name: str, at: str) -> AssetId:
    return AssetId(NS, name, site_id(at))


def runner(name: str) -> SiteDescription:
    return SiteDescription(site_id(name), OTHER, runner=True, store=True)


#: The submitter's site: stores, but runs nothing, so delivering outputs always costs.
HOME = SiteDescription(site_id("home"), SUBMITTER, runner=False, store=True)


def engine_for(access: Mapping[AssetId, Iterable[str]]) -> PolicyEngine:
    """Each asset accessible at the named sites; every result accessible and usable by all."""
    rules: list[dict[str, str]] = [
        {"type": "MayAccess", "site": "*", "asset": RESULTS},
        {"type": "MayUse", "party": "*", "asset": RESULTS, "conditions": "tests"},
        {"type": "ResultOfDataIn", "data": RESULTS, "compute": "*", "output": "*"}
        | {"collection": RESULTS},
    ]
    for item, names in access.items():
        rules.extend(
            {"type": "MayAccess", "site": str(site_id(name)), "asset": str(item)} for name in names
        )
        rules.append(
            {"type": "ResultOfDataIn", "data": str(item), "compute": "*", "output": "*"}
            | {"collection": RESULTS}
        )
        rules.append(
            {"type": "ResultOfComputeIn", "data": "*", "compute": str(item), "output": "*"}
            | {"collection": RESULTS}
        )
    return PolicyEngine(RuleStore(rule_from_dict(rule) for rule in rules))


def dag_job(
    steps: Mapping[str, tuple[AssetId, Sequence[str]]],
    inputs: Mapping[str, AssetId | ResultId],
    outputs: Sequence[str],
) -> Job:
    """Steps `name: (compute, sources)` with one output `out` each; a source is an input
    name or a step name (meaning its `out`); `outputs` name the steps delivered."""

    def source(text: str) -> Source:
        return text if text in inputs else StepOutputRef(text, "out")

    workflow = Workflow(
        list(inputs),
        {f"result_{name}": StepOutputRef(name, "out") for name in outputs},
        [
            WorkflowStep(
                name, compute, {f"in{i}": source(s) for i, s in enumerate(sources)}, {"out": None}
            )
            for name, (compute, sources) in steps.items()
        ],
    )
    return Job(SUBMITTER, workflow, dict(inputs))


def result(job: Job, step: str) -> ResultId:
    return job.result_ids()[StepOutputRef(step, "out")]


def brute_force(
    job: Job, sites: Sequence[SiteDescription], engine: PolicyEngine, sizes: Sizes | None
) -> int:
    """The least cost over every combination of permitted sites."""
    found = find_candidates(job, sites, engine)
    assert isinstance(found, Candidates)
    steps = list(found.sites)
    return min(
        plan_cost(job, dict(zip(steps, combination, strict=True)), found.submitter_site, sizes)
        for combination in itertools.product(*(found.sites[step] for step in steps))
    )


def load_example(
    rules_filter: Callable[[dict[str, str]], bool] | None = None,
) -> tuple[Job, list[SiteDescription], PolicyEngine]:
    job = job_from_dict(yaml.safe_load((EXAMPLE / "job.yaml").read_text()))
    sites = [
        site_from_dict(s) for s in yaml.safe_load((EXAMPLE / "sites.yaml").read_text())["sites"]
    ]
    rules = yaml.safe_load((EXAMPLE / "rules.yaml").read_text())["rules"]
    if rules_filter is not None:
        rules = [rule for rule in rules if rules_filter(rule)]
    return job, sites, PolicyEngine(RuleStore(rule_from_dict(rule) for rule in rules))


# -- the example ---------------------------------------------------------------------


def test_example_plans_compute_at_the_data() -> None:
    """Only site2 may access party2's input, so the step runs there."""
    job, sites, engine = load_example()
    assert plan_job(job, sites, engine) == Plan({"compute": SiteId.parse(SITE2)})


def test_denial_names_every_site_and_its_reasons() -> None:
    """With no site allowed the input, the denial lists each site, runners and others."""
    job, sites, engine = load_example(
        lambda rule: (
            not (rule["type"] == "MayAccess" and rule["asset"].endswith(":input:" + SITE2[5:]))
        )
    )
    archive = SiteDescription(
        SiteId.parse("site:party2.mahiru.example.org:archive"),
        PartyId.parse("party:party2.mahiru.example.org:party2"),
        runner=False,
    )
    with pytest.raises(PermissionDenied) as caught:
        plan_job(job, [*sites, archive], engine)
    error = caught.value
    assert isinstance(error, NoPermittedPlan)
    assert error.message == "no site may run step 'compute'"
    details = json.loads(json.dumps(error.details))
    assert details["outputs"] == []
    reasons = details["steps"]["compute"]
    assert list(reasons) == [SITE1, str(archive.id), SITE2]
    assert reasons[str(archive.id)] == [NO_RUNNER]
    for site in (SITE1, SITE2):
        assert reasons[site] == [
            f"{site} may not access compute.input0: no MayAccess for"
            f" asset:party2.mahiru.example.org:input:{SITE2[5:]} or anything containing it"
        ]
    assert error.denial.to_dict() == details
    assert error.to_dict()["error"]["type"] == "PermissionDenied"
    assert find_candidates(job, [*sites, archive], engine) == error.denial


def test_denial_when_the_submitter_may_not_receive_the_outputs() -> None:
    """Without MayUse on the results, every step is feasible but the job is still denied."""
    job, sites, engine = load_example(lambda rule: rule["type"] != "MayUse")
    found = find_candidates(job, sites, engine)
    assert isinstance(found, PlanDenied)
    assert found.steps == {}
    assert found.outputs and all("may not use result" in line for line in found.outputs)
    assert "may not receive the workflow outputs at " + SITE1 in found.message
    assert "workflow outputs:" in found.explain()
    with pytest.raises(NoPermittedPlan):
        plan_job(job, sites, engine)


def test_submitter_site_must_have_a_store() -> None:
    """A submitter whose only site has no store cannot receive results: InvalidInput."""
    data, compute = asset("data", "a"), asset("script", "a")
    job = dag_job({"s": (compute, ["input"])}, {"input": data}, ["s"])
    engine = engine_for({data: ["a"], compute: ["a"]})
    storeless = SiteDescription(site_id("home"), SUBMITTER, runner=True, store=False)
    with pytest.raises(InvalidInput, match="owns no site with a store"):
        plan_job(job, [storeless, runner("a")], engine)
    with pytest.raises(InvalidInput, match="owns no site with a store"):
        plan_job(job, [runner("a")], engine)


def test_duplicate_site_ids_are_invalid() -> None:
    data, compute = asset("data", "a"), asset("script", "a")
    job = dag_job({"s": (compute, ["input"])}, {"input": data}, ["s"])
    with pytest.raises(InvalidInput, match="duplicate site ids"):
        plan_job(job, [HOME, runner("a"), runner("a")], engine_for({data: ["a"], compute: ["a"]}))


# -- cost ------------------------------------------------------------------------------


def test_sizes_pull_the_step_to_its_biggest_input() -> None:
    """Both sites may run the step; it goes where the big input already is."""
    left, right, compute = asset("left", "a"), asset("right", "b"), asset("script", "a")
    job = dag_job({"s": (compute, ["x", "y"])}, {"x": left, "y": right}, ["s"])
    engine = engine_for({left: ["a", "b"], right: ["a", "b"], compute: ["a", "b"]})
    sites = [HOME, runner("b"), runner("a")]
    assert plan_job(job, sites, engine, {left: 1000})["s"] == site_id("a")
    assert plan_job(job, sites, engine, {right: 1000})["s"] == site_id("b")
    assert plan_job(job, sites, engine, {right: 1000, compute: 5000})["s"] == site_id("a")


def test_plan_cost_counts_pulls_edges_and_delivery() -> None:
    """Inputs pulled, results sent to a consumer elsewhere, and outputs sent home all count."""
    data, first, second = asset("data", "a"), asset("first", "a"), asset("second", "b")
    job = dag_job({"s0": (first, ["input"]), "s1": (second, ["s0"])}, {"input": data}, ["s1"])
    sizes: dict[AssetId | ResultId, int] = {
        data: 10,
        first: 3,
        second: 5,
        result(job, "s0"): 100,
        result(job, "s1"): 7,
    }
    home = HOME.id

    def cost(s0: str, s1: str) -> int:
        return plan_cost(job, Plan({"s0": site_id(s0), "s1": site_id(s1)}), home, sizes)

    assert cost("a", "b") == 100 + 7  # s0's result moves to s1, s1's goes home
    assert cost("a", "a") == 5 + 7  # s1 pulls its script
    assert cost("b", "b") == 10 + 3 + 7  # s0 pulls data and script
    assert cost("b", "a") == 10 + 3 + 100 + 5 + 7
    assert cost("a", "home") == 100 + 5  # delivered where it was made
    with pytest.raises(InvalidInput, match="s1"):
        plan_cost(job, {"s0": site_id("a")}, home, sizes)


def test_a_result_consumed_elsewhere_costs_its_size() -> None:
    """The planner weighs moving a result against pulling inputs."""
    data, first, second = asset("data", "a"), asset("first", "a"), asset("second", "b")
    job = dag_job({"s0": (first, ["input"]), "s1": (second, ["s0"])}, {"input": data}, ["s1"])
    engine = engine_for({data: ["a", "b"], first: ["a", "b"], second: ["b"]})
    sites = [HOME, runner("a"), runner("b")]
    big_result: Sizes = {data: 10, first: 1, result(job, "s0"): 100}
    assert plan_job(job, sites, engine, big_result) == Plan(
        {"s0": site_id("b"), "s1": site_id("b")}
    )
    big_data: Sizes = {data: 1000, first: 1, result(job, "s0"): 100}
    plan = plan_job(job, sites, engine, big_data)
    assert plan == Plan({"s0": site_id("a"), "s1": site_id("b")})
    assert plan_cost(job, plan, HOME.id, big_data) == 100 + 1


def test_an_earlier_result_as_input_is_at_the_submitter_site() -> None:
    earlier = ResultId("ab" * 32)
    compute = asset("script", "a")
    job = dag_job({"s": (compute, ["input"])}, {"input": earlier}, ["s"])
    sizes: dict[AssetId | ResultId, int] = {earlier: 50, compute: 2, result(job, "s"): 3}
    assert plan_cost(job, {"s": site_id("a")}, HOME.id, sizes) == 50 + 3
    assert plan_cost(job, {"s": HOME.id}, HOME.id, sizes) == 2


# -- optimality --------------------------------------------------------------------------

CHAIN_ASSETS = {
    "data": asset("data", "a"),
    "c0": asset("c0", "a"),
    "c1": asset("c1", "b"),
    "c2": asset("c2", "c"),
    "c3": asset("c3", "a"),
}
CHAIN_ACCESS = {
    CHAIN_ASSETS["data"]: ["a", "b", "c"],
    CHAIN_ASSETS["c0"]: ["a", "b"],
    CHAIN_ASSETS["c1"]: ["a", "b", "c"],
    CHAIN_ASSETS["c2"]: ["b", "c"],
    CHAIN_ASSETS["c3"]: ["a", "c"],
}
SITES_ABC = [HOME, runner("c"), runner("a"), runner("b")]


def chain_job() -> Job:
    a = CHAIN_ASSETS
    return dag_job(
        {
            "s0": (a["c0"], ["input"]),
            "s1": (a["c1"], ["s0"]),
            "s2": (a["c2"], ["s1"]),
            "s3": (a["c3"], ["s2"]),
        },
        {"input": a["data"]},
        ["s3"],
    )


@pytest.mark.parametrize(
    ("data", "c1", "mid", "c3"), list(itertools.product([1, 100], [1, 60], [1, 80], [1, 200]))
)
def test_chain_plan_is_as_cheap_as_brute_force(data: int, c1: int, mid: int, c3: int) -> None:
    """On a 4-step chain over 3 sites, the plan's cost equals the best of all combinations."""
    job = chain_job()
    engine = engine_for(CHAIN_ACCESS)
    a = CHAIN_ASSETS
    sizes: dict[AssetId | ResultId, int] = {
        a["data"]: data,
        a["c1"]: c1,
        a["c3"]: c3,
        result(job, "s1"): mid,
        result(job, "s3"): 4,
    }
    plan = plan_job(job, SITES_ABC, engine, sizes)
    found = find_candidates(job, SITES_ABC, engine)
    assert isinstance(found, Candidates)
    assert all(plan[step] in found.sites[step] for step in plan)
    assert plan_cost(job, plan, HOME.id, sizes) == brute_force(job, SITES_ABC, engine, sizes)


TREES = {
    # two branches merging (in-tree)
    "in-tree": {"s0": ("c0", ["input"]), "s1": ("c1", ["input"]), "s2": ("c2", ["s0", "s1"])},
    # one result feeding two steps (out-tree)
    "out-tree": {"s0": ("c1", ["input"]), "s1": ("c0", ["s0"]), "s2": ("c2", ["s0"])},
    # a polytree: merge, then fork
    "polytree": {
        "s0": ("c0", ["input"]),
        "s1": ("c3", ["input"]),
        "s2": ("c1", ["s0", "s1"]),
        "s3": ("c2", ["s2"]),
        "s4": ("c3", ["s2"]),
    },
}


@pytest.mark.parametrize("shape", sorted(TREES))
@pytest.mark.parametrize("weights", [(1, 1, 1), (50, 1, 1), (1, 70, 3), (9, 2, 90)])
def test_tree_plan_is_as_cheap_as_brute_force(shape: str, weights: tuple[int, int, int]) -> None:
    """Trees in either direction are solved exactly."""
    steps = {name: (CHAIN_ASSETS[c], sources) for name, (c, sources) in TREES[shape].items()}
    sinks = [s for s in steps if not any(s in sources for _, sources in steps.values())]
    job = dag_job(steps, {"input": CHAIN_ASSETS["data"]}, sinks)
    data, compute, results = weights
    sizes: dict[AssetId | ResultId, int] = {CHAIN_ASSETS["data"]: data, CHAIN_ASSETS["c1"]: compute}
    sizes.update({r: results * (i + 1) for i, r in enumerate(sorted(job.result_ids().values()))})
    engine = engine_for(CHAIN_ACCESS)
    plan = plan_job(job, SITES_ABC, engine, sizes)
    assert plan_cost(job, plan, HOME.id, sizes) == brute_force(job, SITES_ABC, engine, sizes)


def test_diamond_gets_a_permitted_plan_at_least_cost() -> None:
    """A general DAG (not a tree) still gets a permitted, here optimal, plan."""
    a = CHAIN_ASSETS
    job = dag_job(
        {
            "s0": (a["c1"], ["input"]),
            "s1": (a["c0"], ["s0"]),
            "s2": (a["c2"], ["s0"]),
            "s3": (a["c1"], ["s1", "s2"]),
        },
        {"input": a["data"]},
        ["s3"],
    )
    engine = engine_for(CHAIN_ACCESS)
    sizes: dict[AssetId | ResultId, int] = {a["data"]: 40, result(job, "s0"): 30}
    plan = plan_job(job, SITES_ABC, engine, sizes)
    assert engine.check_job(engine.job_permissions(job), plan.assignments, HOME.id).allowed
    assert plan_cost(job, plan, HOME.id, sizes) == brute_force(job, SITES_ABC, engine, sizes)


def test_cost_model_tables_agree_with_plan_cost() -> None:
    """The node and edge tables the search uses give plan_cost for every assignment."""
    a = CHAIN_ASSETS
    job = dag_job(
        {
            "s0": (a["c1"], ["input"]),
            "s1": (a["c0"], ["s0", "input"]),
            "s2": (a["c2"], ["s0"]),
            "s3": (a["c3"], ["s1", "s2", "s0"]),
        },
        {"input": a["data"]},
        ["s3", "s1"],
    )
    ids = job.result_ids()
    sizes: dict[AssetId | ResultId, int] = {a["data"]: 11, a["c0"]: 13, a["c2"]: 17}
    sizes.update({r: 2 + 3 * i for i, r in enumerate(sorted(ids.values()))})
    steps = job.workflow.topological_order()
    sites = (HOME.id, site_id("a"), site_id("b"), site_id("c"))
    model = CostModel.build(job, steps, sites, HOME.id, sizes)
    for assignment in itertools.product(range(len(sites)), repeat=len(steps)):
        plan = {step: sites[k] for step, k in zip(steps, assignment, strict=True)}
        assert model.total(assignment) == plan_cost(job, plan, HOME.id, sizes)


# -- determinism and candidates --------------------------------------------------------------


def test_ties_go_to_the_smallest_site_id() -> None:
    """When every permitted site costs the same, the smallest id wins, whatever the input order."""
    data, compute = asset("data", "store"), asset("script", "store")
    job = dag_job({"s0": (compute, ["input"]), "s1": (compute, ["s0"])}, {"input": data}, ["s1"])
    engine = engine_for({data: ["c", "b", "a"], compute: ["c", "b", "a"]})
    sites = [runner("c"), HOME, runner("b"), runner("a")]
    expected = Plan({"s0": site_id("a"), "s1": site_id("a")})
    assert plan_job(job, sites, engine) == expected
    assert plan_job(job, list(reversed(sites)), engine) == expected


def test_same_inputs_give_the_same_plan() -> None:
    """Planning again, with a fresh engine or the sites listed in any order, gives the same plan."""
    job = chain_job()
    engine = engine_for(CHAIN_ACCESS)
    plans = {plan_job(job, order, engine) for order in itertools.permutations(SITES_ABC)}
    plans.add(plan_job(job, SITES_ABC, engine_for(CHAIN_ACCESS)))
    assert len(plans) == 1


def test_sites_without_a_runner_are_never_chosen() -> None:
    """Even a site holding everything is not a candidate without a runner."""
    data, compute = asset("data", "home"), asset("script", "home")
    job = dag_job({"s": (compute, ["input"])}, {"input": data}, ["s"])
    engine = engine_for({data: ["home", "a"], compute: ["home", "a"]})
    sizes: dict[AssetId | ResultId, int] = {data: 10**9}
    assert plan_job(job, [HOME, runner("a")], engine, sizes)["s"] == site_id("a")
    found = find_candidates(job, [HOME, runner("a")], engine)
    assert isinstance(found, Candidates)
    assert found.sites == {"s": (site_id("a"),)}
    assert found.submitter_site == HOME.id
