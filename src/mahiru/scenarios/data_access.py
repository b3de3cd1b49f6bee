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

from importlib import resources
from pathlib import Path

from mahiru.files import load_job, load_rules
from mahiru.model.assets import Asset
from mahiru.model.identifiers import SiteId
from mahiru.model.workflow import Job
from mahiru.policy.rules import Rule
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
from mahiru.scenarios.setup import (
    PartyCredentials,
    Progress,
    SiteSpec,
    set_up_site,
)

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


def example_path(name: str) -> Path:
    """A file of the bundled example (rules.yaml, sites.yaml, job.yaml)."""
    return Path(str(resources.files("mahiru") / "examples" / "data_access" / name))


def rules() -> list[Rule]:
    """The scenario's rules (unsigned)."""
    return load_rules(example_path("rules.yaml"))


def job() -> Job:
    """The scenario's job: min/max of party2's input, submitted by party1."""
    return load_job(example_path("job.yaml"))


def site_assets(site: SiteId, assets_dir: Path) -> list[tuple[Asset, Path]]:
    """The assets `site` stores (as in compute-to-data), the input marked for live access."""
    assets = []
    for asset, archive in compute_to_data.site_assets(site, assets_dir):
        if asset.id == INPUT:
            asset = Asset(asset.id, asset.kind, {**asset.metadata, LIVE_ACCESS: True})
        assets.append((asset, archive))
    return assets


def init_site(
    registry_url: str,
    credentials: PartyCredentials,
    site: SiteSpec,
    assets_dir: Path,
    progress: Progress | None = None,
) -> int:
    """Register the party and site, upload the site's assets and add the party's rules.

    Returns the number of rules added. Safe to run again.
    """
    assets = site_assets(site.site, assets_dir)
    return set_up_site(registry_url, credentials, site, assets, rules(), progress)
