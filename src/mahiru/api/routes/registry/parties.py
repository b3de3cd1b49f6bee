"""The registered parties, under `/parties`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from mahiru.api.answers import kept_json
from mahiru.api.registry_models import PartyList, PartyModel
from mahiru.api.routes.registry.dependencies import (
    NO_QUERY,
    Answers,
    Caller,
    Registry,
    Version,
)
from mahiru.model.identifiers import PartyId

router = APIRouter()


@router.get("/parties", response_model=PartyList, dependencies=NO_QUERY)
async def list_parties(
    caller: Caller, service: Registry, answers: Answers, version: Version
) -> Response:
    """Every registered party, by id."""

    def make() -> PartyList:
        return PartyList.model_validate({"parties": [x.to_dict() for x in service.parties()]})

    # Kept by the registry's version (read first): the list changes only with it.
    return await kept_json(answers, "parties", version, make)


@router.get("/parties/{party_id}", response_model=PartyModel, dependencies=NO_QUERY)
def get_party(party_id: str, caller: Caller, service: Registry) -> dict[str, Any]:
    """One registered party."""
    return service.party(PartyId.parse(party_id)).to_dict()
