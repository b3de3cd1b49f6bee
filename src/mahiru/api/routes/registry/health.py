"""Whether the registry is up, under `/health`."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mahiru.api.answers import json_answer
from mahiru.api.registry_models import HealthModel
from mahiru.api.routes.registry.dependencies import NO_QUERY, Caller, Version

router = APIRouter()


@router.get("/health", response_model=HealthModel, dependencies=NO_QUERY)
async def get_health(caller: Caller, version: Version) -> Response:
    """Whether the registry is up and its database readable."""
    return json_answer(HealthModel(status="ok", version=version).model_dump_json().encode())
