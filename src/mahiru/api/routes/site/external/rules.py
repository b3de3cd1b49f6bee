"""A site's rule changes, under `/external/rules`: what its peers replicate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from mahiru.api.answers import EncodedAnswers, app_answers, json_answer
from mahiru.api.registry_models import MAX_VERSION
from mahiru.api.routes.site.dependencies import Peer, Services
from mahiru.api.site_models import RuleChangeBatch

Answers = Annotated[EncodedAnswers | None, Depends(app_answers)]

router = APIRouter(prefix="/external", tags=["external"])


@router.get("/rules/changes", response_model=RuleChangeBatch, summary="This site's rule changes")
async def rule_changes(
    caller: Peer,
    services: Services,
    answers: Answers,
    since: Annotated[int, Query(ge=0, le=MAX_VERSION, description="the version last applied")],
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> Response:
    """The signed rules and revocations published here after version `since`."""
    # Every peer asks this every few seconds, mostly with nothing new: the answer made at
    # the current version is kept, and given without a database read while it is current.
    version = services.rules.known_version()
    if version is not None and answers is not None:
        kept = answers.get(("rules", since, limit), version)
        if kept is not None:
            return json_answer(kept)

    def fresh() -> bytes:
        current = services.rules.version()  # read first: the changes are at least as new
        body = RuleChangeBatch.of(services.rules.changes_since(since, limit=limit))
        encoded = body.model_dump_json(by_alias=True).encode()
        if answers is not None:
            answers.put(("rules", since, limit), current, encoded)
        return encoded

    # In a worker thread: the changes are read from the database.
    return json_answer(await run_in_threadpool(fresh))
