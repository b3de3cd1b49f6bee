"""The registry's change log, under `/changes`, and its version, under `/version`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from mahiru.api.answers import json_answer, kept_json
from mahiru.api.registry_models import (
    DEFAULT_CHANGES_LIMIT,
    MAX_CHANGES_LIMIT,
    MAX_VERSION,
    ChangeBatchModel,
    VersionModel,
)
from mahiru.api.routes.registry.dependencies import (
    NO_QUERY,
    Answers,
    Caller,
    Registry,
    Version,
    only_query,
)

router = APIRouter()


@router.get(
    "/changes",
    response_model=ChangeBatchModel,
    dependencies=[Depends(only_query("since", "limit"))],
)
async def get_changes(
    caller: Caller,
    service: Registry,
    answers: Answers,
    version: Version,
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
) -> Response:
    """The changes after version `since`, oldest first."""

    # Every site asks this every few seconds, mostly with nothing new: the answer made at
    # the current version is kept. The version is read each time (`registry_version`),
    # since other workers of the registry may have written since.
    def make() -> ChangeBatchModel:
        batch = service.changes_since(since, limit=limit or DEFAULT_CHANGES_LIMIT)
        changes = [c.to_dict() for c in batch.changes]
        return ChangeBatchModel.model_validate({"version": batch.version, "changes": changes})

    return await kept_json(answers, ("changes", since, limit), version, make)


@router.get("/version", response_model=VersionModel, dependencies=NO_QUERY)
async def get_version(caller: Caller, version: Version) -> Response:
    """The registry's current version: sign registrations against it."""
    return json_answer(VersionModel(version=version).model_dump_json().encode())
