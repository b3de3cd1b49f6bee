"""The registered sites, under `/sites`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from mahiru.api.answers import kept_json
from mahiru.api.registry_models import SiteList, SiteModel
from mahiru.api.routes.registry.dependencies import (
    NO_QUERY,
    Answers,
    Caller,
    Registry,
    Version,
)
from mahiru.model.identifiers import SiteId

router = APIRouter()


@router.get("/sites", response_model=SiteList, dependencies=NO_QUERY)
async def list_sites(
    caller: Caller, service: Registry, answers: Answers, version: Version
) -> Response:
    """Every registered site, by id."""

    def make() -> SiteList:
        return SiteList.model_validate({"sites": [x.to_dict() for x in service.sites()]})

    # Kept by the registry's version (read first): the list changes only with it.
    return await kept_json(answers, "sites", version, make)


@router.get("/sites/{site_id}", response_model=SiteModel, dependencies=NO_QUERY)
def get_site(site_id: str, caller: Caller, service: Registry) -> dict[str, Any]:
    """One registered site."""
    return service.site(SiteId.parse(site_id)).to_dict()
