"""Shared pieces of the job end-to-end tests (this module holds no tests).

`compute_to_data` puts the compute-to-data scenario on a test network:
party1's site holds the compute assets and the output base, party2's site the
input, with the rules of examples/compute_to_data/rules.yaml adapted to the
network's ids and signed by their owners.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job
from tests.support.sites import Network, SiteServer


def one_step_job(submitter: str, compute: str, data: str, output_base: str) -> Job:
    """The scenario's job: one step running asset `compute` on `data`, its output based on
    `output_base`, submitted by `submitter`."""
    return job_from_dict(
        {
            "submitter": submitter,
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "compute.output0"},
                "steps": [
                    {
                        "name": "compute",
                        "compute_asset": compute,
                        "inputs": {"input0": "input"},
                        "outputs": {"output0": output_base},
                    }
                ],
            },
            "inputs": {"input": data},
        }
    )


@dataclass(frozen=True)
class Scenario:
    """The ids of the scenario on a network."""

    party1: str
    party2: str
    site1: SiteServer
    site2: SiteServer
    input: str
    output_base: str
    computes: dict[str, str]

    def job(self, compute: str = "minmax", *, data: str | None = None) -> Job:
        """The scenario job: one step running `compute` on the input (or `data`)."""
        return one_step_job(
            self.party1, self.computes[compute], data or self.input, self.output_base
        )


def asset_id(site: SiteServer, name: str) -> str:
    """The id of asset `name` stored at `site` (in the site owner's namespace)."""
    namespace = site.party.namespace
    site_name = site.id.rsplit(":", 1)[1]
    return f"asset:{namespace}:{name}:{namespace}:{site_name}"


def compute_to_data(
    net: Network, input_archive: Path, output_base_archive: Path, computes: Mapping[str, Path]
) -> Scenario:
    """Upload the assets to the two sites, publish the rules, replicate everywhere."""
    site1, site2 = net.sites["party1"], net.sites["party2"]
    party1, party2 = site1.party, site2.party
    scenario = Scenario(
        party1=party1.id,
        party2=party2.id,
        site1=site1,
        site2=site2,
        input=asset_id(site2, "input"),
        output_base=asset_id(site1, "output_base"),
        computes={name: asset_id(site1, name) for name in computes},
    )
    results1 = f"asset_collection:{party1.namespace}:results"
    results2 = f"asset_collection:{party2.namespace}:results"
    rules2: list[dict[str, Any]] = [
        {"type": "MayAccess", "site": site2.id, "asset": scenario.input},
        {
            "type": "ResultOfDataIn",
            "data": scenario.input,
            "compute": "*",
            "output": "*",
            "collection": results2,
        },
        {"type": "MayAccess", "site": site1.id, "asset": results2},
        {"type": "MayAccess", "site": site2.id, "asset": results2},
        {"type": "MayUse", "party": party1.id, "asset": results2, "conditions": "analysis"},
    ]
    rules1: list[dict[str, Any]] = [
        {
            "type": "ResultOfDataIn",
            "data": scenario.output_base,
            "compute": "*",
            "output": "*",
            "collection": results1,
        },
        {"type": "MayAccess", "site": site1.id, "asset": results1},
        {"type": "MayAccess", "site": site2.id, "asset": results1},
        {"type": "MayUse", "party": party1.id, "asset": results1, "conditions": "own results"},
    ]
    for asset in (scenario.output_base, *scenario.computes.values()):
        rules1 += [{"type": "MayAccess", "site": s.id, "asset": asset} for s in (site1, site2)]
    for compute in scenario.computes.values():
        rules1.append(
            {
                "type": "ResultOfComputeIn",
                "data": "*",
                "compute": compute,
                "output": "*",
                "collection": results1,
            }
        )
    with site1.admin() as admin:
        admin.upload_asset(_asset(scenario.output_base, AssetKind.DATA), output_base_archive)
        for name, archive in computes.items():
            admin.upload_asset(_asset(scenario.computes[name], AssetKind.COMPUTE), archive)
        for rule in rules1:
            admin.add_rule(party1.sign(rule))
    with site2.admin() as admin:
        admin.upload_asset(_asset(scenario.input, AssetKind.DATA), input_archive)
        for rule in rules2:
            admin.add_rule(party2.sign(rule))
    net.replicate_all()
    return scenario


def _asset(text: str, kind: AssetKind) -> Asset:
    return Asset(AssetId.parse(text), kind)
