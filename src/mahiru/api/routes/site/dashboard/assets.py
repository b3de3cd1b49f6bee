"""The dashboard's assets page: the assets stored here and those rules name, and who may
access and use each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from mahiru.api.routes.site.dashboard.pages import BASE, Dashboard
from mahiru.api.routes.site.dependencies import Services, User
from mahiru.model.identifiers import AssetId
from mahiru.policy.permissions import primary
from mahiru.policy.rules import Rule

router = APIRouter(prefix=BASE, include_in_schema=False)


@router.get("/assets")
def assets(caller: User, dashboard: Dashboard, services: Services) -> HTMLResponse:
    """Each asset with the sites that may access it and the parties that may use it."""
    reader = services.policy.reader()  # answers only: nothing here is audited
    site_ids = [record.id for record in services.replication.replica.sites()]
    party_ids = [record.id for record in services.replication.replica.parties()]

    def who(asset: Any) -> dict[str, Any]:
        text = str(asset)
        permissions = primary(asset)
        return {
            "id": text,
            "sites": [
                str(site) for site in site_ids if reader.may_access(site, permissions, text).allowed
            ],
            "parties": [
                str(party)
                for party in party_ids
                if reader.may_use(party, permissions, text).allowed
            ],
        }

    stored = []
    for record in services.assets.list():
        row = who(record.asset.id)
        digest = record.asset.image_digest
        row.update(
            kind=record.asset.kind.value,
            size=record.size if record.size is not None else "",
            digest=f"sha256:{digest[:16]}…" if digest else "no image",
        )
        stored.append(row)
    stored_ids = {row["id"] for row in stored}
    known = [who(asset) for asset in _assets_named(reader.rules()) if str(asset) not in stored_ids]
    return dashboard.render("assets.html", caller, "Assets", "Assets", stored=stored, known=known)


def _assets_named(rules: Iterable[Rule]) -> list[AssetId]:
    """Every asset id some rule names, sorted."""
    named = {
        value
        for rule in rules
        for value in (getattr(rule, f.name) for f in fields(rule))
        if isinstance(value, AssetId)
    }
    return sorted(named, key=str)
