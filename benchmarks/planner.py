"""How the planner scales: chains and random DAGs of 10 to 5,000 steps over 5 and 20 sites.

Usage: .venv/bin/python benchmarks/planner.py [--quick] [--profile]

Each case is built from a fixed seed. The rules put every compute asset in
one of eight code collections, each accessible to a random half of the sites
(through site categories), and the data in a collection accessible to all
sites but one, so most steps may run on several sites. Results may go
anywhere and the submitter may use them. For each case the table gives the
time to compute the job's permissions, the time to plan given them (with,
in brackets, the part spent asking the policy engine which sites may run
each step), peak traced memory, and how the total time grew from the
previous size. Every timing uses a fresh engine and rule store, so no cache
is warm. `--quick` stops at 100 steps and judges no goal (a smoke test);
`--profile` prints the functions where planning 1,000 DAG steps over 20
sites spends its time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from mahiru.model.assets import SiteDescription
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.workflow import Job, Source, StepOutputRef, Workflow, WorkflowStep
from mahiru.planner import find_candidates, plan_job
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.rules import Rule, rule_from_dict
from mahiru.policy.store import RuleStore

NS = "bench.example.org"
SUBMITTER = PartyId(NS, "submitter")
GROUPS = 8
COMPUTE_ASSETS = 40
RESULTS = f"asset_collection:{NS}:results"
DATA = f"asset_collection:{NS}:data"
GOAL_STEPS, GOAL_SITES, GOAL_SECONDS = 1000, 20, 1.0

T = TypeVar("T")


@dataclass(frozen=True)
class Case:
    """One planning problem: a job, its sites, its rules and its sizes."""

    shape: str
    job: Job
    sites: list[SiteDescription]
    rules: list[Rule]
    sizes: dict[AssetId | ResultId, int]

    def engine(self) -> PolicyEngine:
        """A fresh engine over a fresh store: no warm caches."""
        return PolicyEngine(RuleStore(self.rules))


def build_case(shape: str, steps: int, site_count: int, seed: int) -> Case:
    """A seeded chain or random DAG of `steps` steps over `site_count` sites."""
    rng = random.Random(f"{shape}-{steps}-{site_count}-{seed}")
    site_ids = [SiteId(NS, f"site{i:02d}") for i in range(site_count)]
    sites = [
        SiteDescription(site, SUBMITTER if i == 0 else PartyId(NS, f"party{i % 4}"))
        for i, site in enumerate(site_ids)
    ]
    rules: list[dict[str, str]] = [
        {"type": "MayAccess", "site": "*", "asset": RESULTS},
        {"type": "MayUse", "party": str(SUBMITTER), "asset": RESULTS, "conditions": "bench"},
        {"type": "ResultOfDataIn", "data": RESULTS, "compute": "*", "output": "*"}
        | {"collection": RESULTS},
        {"type": "ResultOfDataIn", "data": DATA, "compute": "*", "output": "*"}
        | {"collection": RESULTS},
        {"type": "MayAccess", "site": f"site_category:{NS}:trusted", "asset": DATA},
    ]
    rules.extend(
        {"type": "InSiteCategory", "site": str(site), "category": f"site_category:{NS}:trusted"}
        for site in site_ids[:-1]
    )
    for group in range(GROUPS):
        category = f"site_category:{NS}:group{group}"
        code = f"asset_collection:{NS}:code{group}"
        members = rng.sample(site_ids, max(2, site_count // 2))
        rules.extend(
            {"type": "InSiteCategory", "site": str(site), "category": category} for site in members
        )
        rules.append({"type": "MayAccess", "site": category, "asset": code})
        rules.append(
            {"type": "ResultOfComputeIn", "data": "*", "compute": code, "output": "*"}
            | {"collection": RESULTS}
        )
    computes = [AssetId(NS, f"code{j}", rng.choice(site_ids)) for j in range(COMPUTE_ASSETS)]
    rules.extend(
        {
            "type": "InAssetCollection",
            "asset": str(compute),
            "collection": f"asset_collection:{NS}:code{j % GROUPS}",
        }
        for j, compute in enumerate(computes)
    )
    input_count = 1 if shape == "chain" else 1 + steps // 20
    inputs = {
        f"in{i:03d}": AssetId(NS, f"data{i}", rng.choice(site_ids)) for i in range(input_count)
    }
    rules.extend(
        {"type": "InAssetCollection", "asset": str(data), "collection": DATA}
        for data in inputs.values()
    )
    job = Job(SUBMITTER, _workflow(shape, steps, list(inputs), computes, rng), inputs)
    sizes: dict[AssetId | ResultId, int] = {}
    sizes.update({data: rng.randint(10**6, 10**9) for data in inputs.values()})
    sizes.update({compute: rng.randint(10**5, 10**7) for compute in computes})
    sizes.update({result: rng.randint(10**3, 10**8) for result in job.result_ids().values()})
    return Case(shape, job, sites, [rule_from_dict(rule) for rule in rules], sizes)


def _workflow(
    shape: str, steps: int, inputs: list[str], computes: list[AssetId], rng: random.Random
) -> Workflow:
    """A chain (each step reads the previous one) or a DAG (1-3 sources among recent steps)."""
    names = [f"s{i:05d}" for i in range(steps)]
    consumed: set[str] = set()
    specs: list[WorkflowStep] = []
    for i, name in enumerate(names):
        sources: list[Source]
        if shape == "chain":
            sources = [StepOutputRef(names[i - 1], "out") if i else inputs[0]]
        else:
            sources = []
            for _ in range(rng.randint(1, 3)):
                if i == 0 or rng.random() < 0.15:
                    sources.append(rng.choice(inputs))
                else:
                    sources.append(StepOutputRef(names[rng.randrange(max(0, i - 50), i)], "out"))
        consumed.update(s.step for s in sources if isinstance(s, StepOutputRef))
        specs.append(
            WorkflowStep(
                name,
                rng.choice(computes),
                {f"x{k}": source for k, source in enumerate(sources)},
                {"out": None},
            )
        )
    outputs = {f"r{name[1:]}": StepOutputRef(name, "out") for name in names if name not in consumed}
    return Workflow(inputs, outputs, specs)


def best_time(function: Callable[[], T], repeats: int) -> tuple[float, T]:
    """The fastest of `repeats` runs, and the last run's value."""
    fastest = float("inf")
    value: T | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        fastest = min(fastest, time.perf_counter() - start)
    assert value is not None
    return fastest, value


def measure(case: Case, repeats: int) -> tuple[float, float, float, float]:
    """Seconds for permissions, for planning, for the feasibility checks; peak MiB."""
    perms_s, perms = best_time(lambda: case.engine().job_permissions(case.job), repeats)
    plan_s, _ = best_time(
        lambda: plan_job(case.job, case.sites, case.engine(), case.sizes, permissions=perms),
        repeats,
    )
    checks_s, _ = best_time(
        lambda: find_candidates(case.job, case.sites, case.engine(), perms), repeats
    )
    tracemalloc.start()
    engine = case.engine()
    plan_job(case.job, case.sites, engine, case.sizes, permissions=engine.job_permissions(case.job))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return perms_s, plan_s, checks_s, peak / 2**20


def profile(case: Case) -> str:
    """The top functions by cumulative and by own time for planning `case`."""
    profiler = cProfile.Profile()
    engine = case.engine()
    profiler.enable()
    plan_job(case.job, case.sites, engine, case.sizes, permissions=engine.job_permissions(case.job))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="only up to 100 steps, no goal")
    parser.add_argument("--profile", action="store_true", help="profile 1,000 DAG steps x 20 sites")
    args = parser.parse_args(argv)
    step_counts = [10, 100] if args.quick else [10, 100, 1000, 5000]

    header = (
        f"{'shape':<6} {'steps':>6} {'sites':>5} {'perms s':>8} {'plan s':>8}"
        f" {'(checks)':>9} {'total s':>8} {'peak MiB':>9} {'growth':>7}"
    )
    print(header)
    print("-" * len(header))
    goal_totals: list[float] = []
    for shape in ("chain", "dag"):
        for site_count in (5, 20):
            previous: float | None = None
            for steps in step_counts:
                case = build_case(shape, steps, site_count, seed=1)
                perms_s, plan_s, checks_s, peak = measure(case, 3 if steps <= 1000 else 1)
                total = perms_s + plan_s
                growth = f"x{total / previous:.1f}" if previous else "-"
                previous = total
                if (steps, site_count) == (GOAL_STEPS, GOAL_SITES):
                    goal_totals.append(total)
                print(
                    f"{shape:<6} {steps:>6} {site_count:>5} {perms_s:>8.4f} {plan_s:>8.4f}"
                    f" {f'({checks_s:.4f})':>9} {total:>8.4f} {peak:>9.1f} {growth:>7}"
                )
    met = True
    if goal_totals:  # not with --quick, which stops short of the goal's size
        worst = max(goal_totals)
        met = worst < GOAL_SECONDS
        print(
            f"\ngoal {GOAL_STEPS:,} steps x {GOAL_SITES} sites < {GOAL_SECONDS:.0f} s:"
            f" {'met' if met else 'NOT met'} (worst {worst:.3f} s, permissions + plan)"
        )
    if args.profile:
        print(profile(build_case("dag", GOAL_STEPS, GOAL_SITES, seed=1)))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
