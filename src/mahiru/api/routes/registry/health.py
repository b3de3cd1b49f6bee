"""Whether the registry is up, under `/health`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mahiru.api.registry_models import HealthModel
from mahiru.api.routes.registry.dependencies import NO_QUERY, Caller, Registry

router = APIRouter()


@router.get("/health", response_model=HealthModel, dependencies=NO_QUERY)
def get_health(caller: Caller, service: Registry) -> dict[str, Any]:
    """Whether the registry is up and its database readable."""
    return {"status": "ok", "version": service.version()}
