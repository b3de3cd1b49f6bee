"""The compute-to-data scenario on a `FakeNetwork`, and the step programs of its compute
assets (this module holds no tests).

As examples/compute_to_data has it: party1's site holds the compute assets and
the output base, party2's site the input, with the rules of its rules.yaml
adapted to the network's ids and signed by their owners. Each compute asset's
program is a Python callable (`tests.support.fake_runtime`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace

from mahiru.model.assets import AssetKind
from mahiru.model.workflow import Job
from tests.support.fake_runtime import Program, StepRun, archive_of
from tests.support.fake_sites import FakeNetwork, FakeSite
from tests.support.jobs import one_step_job


def minmax(run: StepRun) -> int:
    """Reads a JSON list from the one file of input0; writes [min, max] to output0/data.json."""
    (source,) = [path for path in run.inputs["input0"].rglob("*") if path.is_file()]
    values = json.loads(source.read_bytes())
    run.log.append(f"read {len(values)} values")
    run.write("output0", "data.json", json.dumps([min(values), max(values)]).encode())
    return 0


def failing(run: StepRun) -> int:
    """Writes a log line and exits with 3."""
    run.log.append("failing on purpose")
    return 3


def too_much(run: StepRun) -> int:
    """Writes more than the fake sites' output limit (1 MiB)."""
    run.write("output0", "big", b"x" * (1024 * 1024 + 1000))
    return 0


def too_slow(run: StepRun) -> int:
    """Takes (simulated) longer than the 60 s time limit."""
    run.sleep(61)
    return 0


class Hang:
    """A step that blocks until released (or its container is stopped), then works as minmax."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def __call__(self, run: StepRun) -> int:
        self.started.set()
        run.block(self.release)
        return minmax(run)


@dataclass(frozen=True)
class Scenario:
    """The compute-to-data scenario's ids: computes and output base at site1, input at site2."""

    net: FakeNetwork
    site1: FakeSite
    site2: FakeSite
    input: str
    output_base: str
    computes: dict[str, str]

    def on(self, net: FakeNetwork) -> Scenario:
        """The same scenario on a copy of its network."""
        return replace(
            self,
            net=net,
            site1=net.sites["party1"],
            site2=net.sites["party2"],
            computes=dict(self.computes),
        )

    def job(self, compute: str = "minmax", *, data: str | None = None) -> Job:
        """One step running `compute` on the input (or `data`)."""
        return one_step_job(
            str(self.site1.party.id), self.computes[compute], data or self.input, self.output_base
        )

    def add_compute(self, name: str, program: Program, *, replicate: bool = True) -> str:
        """A compute asset `name` at site1 running `program`, with the rules that let both
        sites run it and party1 use what it makes; its id."""
        site1, site2 = self.site1, self.site2
        compute = site1.add_asset(name, AssetKind.COMPUTE, self.net.programs.compute(name, program))
        for site in (site1, site2):
            site1.add_rule({"type": "MayAccess", "site": str(site.id), "asset": compute})
        site1.add_rule(
            {
                "type": "ResultOfComputeIn",
                "data": "*",
                "compute": compute,
                "output": "*",
                "collection": f"asset_collection:{site1.party.namespace}:results",
            }
        )
        self.computes[name] = compute
        if replicate:
            self.net.replicate()
        return compute


def compute_to_data(net: FakeNetwork, computes: dict[str, Program]) -> Scenario:
    """The assets and rules of examples/compute_to_data, with `computes` as compute assets."""
    site1, site2 = net.sites["party1"], net.sites["party2"]
    p1 = str(site1.party.id)
    data = site2.add_asset("input", AssetKind.DATA, archive_of({"payload": b"[5, 1, 34, 2]"}))
    base = site1.add_asset("output_base", AssetKind.DATA, archive_of({}))
    results1 = f"asset_collection:{site1.party.namespace}:results"
    results2 = f"asset_collection:{site2.party.namespace}:results"
    for rule in (
        {"type": "MayAccess", "site": str(site2.id), "asset": data},
        _results_of("ResultOfDataIn", data, results2),
        {"type": "MayAccess", "site": str(site1.id), "asset": results2},
        {"type": "MayAccess", "site": str(site2.id), "asset": results2},
        {"type": "MayUse", "party": p1, "asset": results2, "conditions": "analysis"},
    ):
        site2.add_rule(rule)
    for rule in (
        _results_of("ResultOfDataIn", base, results1),
        {"type": "MayAccess", "site": str(site1.id), "asset": results1},
        {"type": "MayAccess", "site": str(site2.id), "asset": results1},
        {"type": "MayUse", "party": p1, "asset": results1, "conditions": "own results"},
        {"type": "MayAccess", "site": str(site1.id), "asset": base},
        {"type": "MayAccess", "site": str(site2.id), "asset": base},
    ):
        site1.add_rule(rule)
    scenario = Scenario(net, site1, site2, data, base, {})
    for name, program in computes.items():
        scenario.add_compute(name, program, replicate=False)
    net.replicate()
    return scenario


def _results_of(kind: str, asset: str, collection: str) -> dict[str, str]:
    key = "data" if kind == "ResultOfDataIn" else "compute"
    rule = {"type": kind, "data": "*", "compute": "*", "output": "*", "collection": collection}
    rule[key] = asset
    return rule
