"""The registered sites, under `/sites`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mahiru.api.registry_models import SiteList, SiteModel
from mahiru.api.routes.registry.dependencies import NO_QUERY, Caller, Registry
from mahiru.model.identifiers import SiteId

router = APIRouter()


@router.get("/sites", response_model=SiteList, dependencies=NO_QUERY)
def list_sites(caller: Caller, service: Registry) -> dict[str, Any]:
    """Every registered site, by id."""
    return {"sites": [site.to_dict() for site in service.sites()]}


@router.get("/sites/{site_id}", response_model=SiteModel, dependencies=NO_QUERY)
def get_site(site_id: str, caller: Caller, service: Registry) -> dict[str, Any]:
    """One registered site."""
    return service.site(SiteId.parse(site_id)).to_dict()
