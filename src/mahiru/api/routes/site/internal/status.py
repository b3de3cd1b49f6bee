"""A site's status and replication, under `/internal`: read by any user, a replication
round run on demand by admins."""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import APIRouter

from mahiru.api.routes.site.dependencies import Admin, Services, User
from mahiru.api.site_models import StatusOut

router = APIRouter(prefix="/internal", tags=["internal"])


@router.post("/replication/run", response_model=StatusOut, summary="Replicate now")
async def replicate_now(caller: Admin, services: Services) -> StatusOut:
    """Run a replication round now (waiting for one in progress), trying every source, even
    one backing off after failures; return the status.

    Admins only: each round calls the registry and every peer."""
    await asyncio.to_thread(partial(services.replication.replicator.run_once, eager=True))
    return StatusOut.of(await asyncio.to_thread(services.status))


@router.get("/status", response_model=StatusOut, summary="Site status")
def status(caller: User, services: Services) -> StatusOut:
    """Replication versions and last errors per source, rule and asset counts."""
    return StatusOut.of(services.status())
