"""A site's rule changes, under `/external/rules`: what its peers replicate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from mahiru.api.registry_models import MAX_VERSION
from mahiru.api.routes.site.dependencies import Peer, Services
from mahiru.api.site_models import RuleChangeBatch

router = APIRouter(prefix="/external", tags=["external"])


@router.get("/rules/changes", response_model=RuleChangeBatch, summary="This site's rule changes")
def rule_changes(
    caller: Peer,
    services: Services,
    since: Annotated[int, Query(ge=0, le=MAX_VERSION, description="the version last applied")],
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> RuleChangeBatch:
    """The signed rules and revocations published here after version `since`."""
    return RuleChangeBatch.of(services.rules.changes_since(since, limit=limit))
