"""Live access to data stored at a site, under `/external/live`: a grant for one step of
another site's job, and the granted asset's files, read through it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import WithJsonSchema
from starlette.responses import StreamingResponse

from mahiru.api.routes.site.dependencies import Jobs, Peer
from mahiru.api.site_images import DIGEST_HEADER
from mahiru.model.live import LIVE_GRANT_REQUEST_SHAPE, LiveGrantRequest

JsonObject = dict[str, Any]
#: A live grant request, parsed by `LiveGrantRequest.from_dict`.
GrantRequest = Annotated[JsonObject, Body(), WithJsonSchema(LIVE_GRANT_REQUEST_SHAPE.json_schema())]

router = APIRouter(prefix="/external", tags=["external"])


@router.post("/live/grants", status_code=201, summary="Grant live access to a data asset")
def live_grant(body: GrantRequest, caller: Peer, jobs: Jobs) -> JsonObject:
    """A token for the caller's step to read a live data asset, if this site's policy
    lets the caller run that step; 403 with the explanation otherwise."""
    token, grant = jobs.live.grant(LiveGrantRequest.from_dict(body), caller.id)
    return {"token": token, "grant": grant.to_dict()}


@router.get("/live/{token}/files", summary="List a live data asset's files")
def live_files(token: str, caller: Peer, jobs: Jobs) -> JsonObject:
    """The files of the granted asset's /data (the grantee site only)."""
    return {"files": jobs.egress.live_files(token, caller.id)}


@router.get(
    "/live/{token}/files/{path:path}",
    response_class=StreamingResponse,
    summary="Read a file of a live data asset",
)
def live_file(token: str, path: str, caller: Peer, jobs: Jobs) -> StreamingResponse:
    """One file of the granted asset's /data (the grantee site only), checked against
    its recorded sha256 as it is sent."""
    file = jobs.egress.live_file(token, caller.id, path)
    return StreamingResponse(
        file.read(),
        media_type="application/octet-stream",
        headers={"Content-Length": str(file.size), DIGEST_HEADER: f"sha256:{file.digest}"},
    )


@router.delete("/live/{token}", summary="Revoke a live grant")
def live_revoke(token: str, caller: Peer, jobs: Jobs) -> JsonObject:
    """End a grant before it expires (the grantee site only)."""
    jobs.live.revoke(token, caller.id)
    return {"revoked": True}
