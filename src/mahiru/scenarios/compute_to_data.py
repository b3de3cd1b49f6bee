"""The compute-to-data scenario: party2's data stays at site2, party1's script goes there.

party1 (site1) holds the min/max compute asset `script1` and an output base;
party2 (site2) holds the input data set, which only site2 may access. The
rules are those of `examples/compute_to_data/rules.yaml`, and the job asks
for `[min, max]` of the input, which is `[1, 34]`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from mahiru.cli.files import load_job, load_rules
from mahiru.client.site import SiteClient
from mahiru.errors import InvalidInput
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.workflow import Job
from mahiru.policy.rules import Rule
from mahiru.scenarios.setup import (
    PartyCredentials,
    Progress,
    SiteSpec,
    add_rules,
    own_rules,
    register,
    upload_assets,
)

NS1 = "party1.mahiru.example.org"
NS2 = "party2.mahiru.example.org"
PARTY1 = PartyId(NS1, "party1")
PARTY2 = PartyId(NS2, "party2")
SITE1 = SiteId(NS1, "site1")
SITE2 = SiteId(NS2, "site2")
SCRIPT = AssetId(NS1, "script1", SITE1)
OUTPUT_BASE = AssetId(NS1, "output_base", SITE1)
INPUT = AssetId(NS2, "input", SITE2)

#: The expected content of the result's /data/data.json.
EXPECTED_RESULT = [1, 34]

#: Asset archive file names, as `python -m mahiru.runtime.assets` writes them.
ARCHIVES = {
    SCRIPT: "minmax.tar",
    OUTPUT_BASE: "output-base.tar",
    INPUT: "compute-to-data-input.tar",
}


def example_path(name: str) -> Path:
    """A file of the bundled example (rules.yaml, sites.yaml, job.yaml)."""
    path = resources.files("mahiru") / "examples" / "compute_to_data" / name
    return Path(str(path))


def rules() -> list[Rule]:
    """The scenario's rules (unsigned)."""
    return load_rules(example_path("rules.yaml"))


def job() -> Job:
    """The scenario's job: min/max of party2's input, submitted by party1."""
    return load_job(example_path("job.yaml"))


def _asset(asset_id: AssetId, kind: AssetKind, archive: Path, **metadata: Any) -> Asset:
    return Asset(asset_id, kind, {"size": archive.stat().st_size, **metadata})


def site_assets(site: SiteId, assets_dir: Path) -> list[tuple[Asset, Path]]:
    """The assets `site` stores, with their archive files in `assets_dir`."""
    assets: list[tuple[Asset, Path]] = []
    for asset_id, file_name in ARCHIVES.items():
        if asset_id.site != site:
            continue
        archive = assets_dir / file_name
        if not archive.is_file():
            raise InvalidInput(
                f"asset archive {archive} is missing: build the scenario assets with"
                " `make assets` (or `python -m mahiru.runtime.assets --out DIR`)"
            )
        if asset_id == SCRIPT:
            asset = _asset(
                asset_id, AssetKind.COMPUTE, archive, outputs={"output0": str(OUTPUT_BASE)}
            )
        else:
            asset = _asset(asset_id, AssetKind.DATA, archive)
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
    register(registry_url, credentials, site)
    with SiteClient(site.internal_url, credentials.site_identity()) as client:
        upload_assets(client, site_assets(site.site, assets_dir), progress)
        client.replicate_now()
        return add_rules(
            client, own_rules(rules(), credentials.party), credentials.party_dir / "party.key"
        )
