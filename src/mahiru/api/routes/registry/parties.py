"""The registered parties, under `/parties`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mahiru.api.registry_models import PartyList, PartyModel
from mahiru.api.routes.registry.dependencies import NO_QUERY, Caller, Registry
from mahiru.model.identifiers import PartyId

router = APIRouter()


@router.get("/parties", response_model=PartyList, dependencies=NO_QUERY)
def list_parties(caller: Caller, service: Registry) -> dict[str, Any]:
    """Every registered party, by id."""
    return {"parties": [party.to_dict() for party in service.parties()]}


@router.get("/parties/{party_id}", response_model=PartyModel, dependencies=NO_QUERY)
def get_party(party_id: str, caller: Caller, service: Registry) -> dict[str, Any]:
    """One registered party."""
    return service.party(PartyId.parse(party_id)).to_dict()
