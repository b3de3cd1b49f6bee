"""The dashboard's assets page: the assets stored here and those rules name, and who may
access and use each, a page at a time (who may have an asset is asked only for the
assets on the page shown)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from mahiru.api.routes.site.dashboard.pages import ASSETS_PER_PAGE, BASE, Dashboard
from mahiru.api.routes.site.dependencies import Jobs, Services, User
from mahiru.model.identifiers import AssetId, ResultId
from mahiru.policy.rules import Rule

router = APIRouter(prefix=BASE, include_in_schema=False)


@router.get("/assets")
def assets(
    caller: User,
    dashboard: Dashboard,
    services: Services,
    jobs: Jobs,
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    """One page of the assets, those stored here first (by id), then those only rules
    name: each with the sites that may access it and the parties that may use it, as
    the egress gate would decide: a stored result by the permissions of the job output
    it is (its ResultOf rules), not as a primary asset."""
    site_ids = [record.id for record in services.replication.replica.sites()]
    party_ids = [record.id for record in services.replication.replica.parties()]

    def who(asset: AssetId | ResultId) -> dict[str, Any]:
        sites, parties = jobs.egress.holders(asset, site_ids, party_ids)
        return {
            "id": str(asset),
            "sites": [str(site) for site in sites],
            "parties": [str(party) for party in parties],
        }

    records = services.assets.list()
    stored_ids = {str(record.asset.id) for record in records}
    rules = services.policy.reader().rules()  # answers only: nothing here is audited
    named = [asset for asset in _assets_named(rules) if str(asset) not in stored_ids]
    first = (page - 1) * ASSETS_PER_PAGE
    last = first + ASSETS_PER_PAGE
    stored = []
    for record in records[first:last]:
        row = who(record.asset.id)
        digest = record.asset.image_digest
        row.update(
            kind=record.asset.kind.value,
            size=record.size,
            digest=f"sha256:{digest[:16]}…" if digest else "no image",
        )
        stored.append(row)
    skipped = len(records)
    known = [who(asset) for asset in named[max(first - skipped, 0) : max(last - skipped, 0)]]
    total = len(records) + len(named)
    return dashboard.render(
        "assets.html",
        caller,
        "Assets",
        "Assets",
        stored=stored,
        known=known,
        stored_total=len(records),
        known_total=len(named),
        page=page,
        pages=max((total + ASSETS_PER_PAGE - 1) // ASSETS_PER_PAGE, 1),
    )


def _assets_named(rules: Iterable[Rule]) -> list[AssetId]:
    """Every asset id some rule names, sorted."""
    named = {
        value
        for rule in rules
        for value in (getattr(rule, f.name) for f in fields(rule))
        if isinstance(value, AssetId)
    }
    return sorted(named, key=str)
