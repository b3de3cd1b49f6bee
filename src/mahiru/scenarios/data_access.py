"""The data access scenario: party1's script runs at site1 and reads party2's data live.

The parties, sites and assets are those of the compute-to-data scenario, but
the rules differ (`examples/data_access/rules.yaml`): site2 lets any site
access the input, while only site1 may access the compute asset, so the step
runs at site1. The input is marked `live_access`, so it is never copied to
site1: site2 serves it only to that step's container, through a channel
scoped to the step (see `mahiru.services.jobs.live_channel`). The result is
`[1, 34]`, as in the other scenario.
"""

from __future__ import annotations

from pathlib import Path

from mahiru.model.assets import Asset
from mahiru.model.identifiers import SiteId
from mahiru.scenarios import compute_to_data
from mahiru.scenarios.compute_to_data import (
    EXPECTED_RESULT,
    INPUT,
    OUTPUT_BASE,
    PARTY1,
    PARTY2,
    SCRIPT,
    SITE1,
    SITE2,
)
from mahiru.scenarios.setup import ScenarioExample

__all__ = [
    "EXPECTED_RESULT",
    "INPUT",
    "OUTPUT_BASE",
    "PARTY1",
    "PARTY2",
    "SCRIPT",
    "SITE1",
    "SITE2",
    "init_site",
    "job",
    "rules",
    "site_assets",
]

#: The asset metadata key that asks for live access (see `mahiru.model.assets.Asset`).
LIVE_ACCESS = "live_access"

#: How long `submit_job` waits for the job by default (seconds).
JOB_TIMEOUT = 300.0


def site_assets(site: SiteId, assets_dir: Path) -> list[tuple[Asset, Path]]:
    """The assets `site` stores (as in compute-to-data), the input marked for live access."""
    assets = []
    for asset, archive in compute_to_data.site_assets(site, assets_dir):
        if asset.id == INPUT:
            asset = Asset(asset.id, asset.kind, {**asset.metadata, LIVE_ACCESS: True})
        assets.append((asset, archive))
    return assets


#: The bundled example and its assets; the scenario's rules, job and site set-up.
SCENARIO = ScenarioExample("data_access", site_assets)
example_path = SCENARIO.example_path
rules = SCENARIO.rules
job = SCENARIO.job
init_site = SCENARIO.init_site
