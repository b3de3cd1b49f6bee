"""The registry's change log, under `/changes`, and its version, under `/version`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from mahiru.api.registry_models import (
    DEFAULT_CHANGES_LIMIT,
    MAX_CHANGES_LIMIT,
    MAX_VERSION,
    ChangeBatchModel,
    VersionModel,
)
from mahiru.api.routes.registry.dependencies import NO_QUERY, Caller, Registry, only_query

router = APIRouter()


@router.get(
    "/changes",
    response_model=ChangeBatchModel,
    dependencies=[Depends(only_query("since", "limit"))],
)
def get_changes(
    caller: Caller,
    service: Registry,
    since: Annotated[
        int, Query(ge=0, le=MAX_VERSION, description="The version already seen (0: none).")
    ],
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_CHANGES_LIMIT,
            description=f"At most this many changes (default {DEFAULT_CHANGES_LIMIT}). When"
            " a batch is full its version is that of its last change: ask again from there"
            " until a batch comes back empty.",
        ),
    ] = None,
) -> dict[str, Any]:
    """The changes after version `since`, oldest first."""
    batch = service.changes_since(since, limit=limit or DEFAULT_CHANGES_LIMIT)
    return {"version": batch.version, "changes": [c.to_dict() for c in batch.changes]}


@router.get("/version", response_model=VersionModel, dependencies=NO_QUERY)
def get_version(caller: Caller, service: Registry) -> dict[str, Any]:
    """The registry's current version: sign registrations against it."""
    return {"version": service.version()}
