"""Live access to data stored at a site, under `/external/live`: a grant for one step of
another site's job, and the granted asset's files, read through it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.responses import StreamingResponse

from mahiru.api.routes.site.dependencies import Jobs, Peer
from mahiru.api.site_images import DIGEST_HEADER
from mahiru.api.site_models import JobIn
from mahiru.model.identifiers import AssetId, JobId, SiteId, parse_identifier
from mahiru.model.jobs import check_job_id
from mahiru.model.serialization import job_from_dict
from mahiru.services.jobs.live_grants import LiveGrantRequest

JsonObject = dict[str, Any]

router = APIRouter(prefix="/external", tags=["external"])


class LiveGrantIn(BaseModel):
    """A request to read a live data asset here, for one input of one step of a job."""

    model_config = ConfigDict(extra="forbid")
    job_id: JobId
    job: JobIn
    #: The site the job was submitted at, which the data's site asks about the step.
    submitter_site: str
    step: str
    input: str
    asset: str


@router.post("/live/grants", status_code=201, summary="Grant live access to a data asset")
def live_grant(body: LiveGrantIn, caller: Peer, jobs: Jobs) -> JsonObject:
    """A token for the caller's step to read a live data asset, if this site's policy
    lets the caller run that step; 403 with the explanation otherwise."""
    asset = parse_identifier(body.asset, ("asset",))
    assert isinstance(asset, AssetId)  # guaranteed by the allowed kind
    request = LiveGrantRequest(
        check_job_id(body.job_id),
        job_from_dict(body.job.model_dump()),
        SiteId.parse(body.submitter_site),
        body.step,
        body.input,
        asset,
    )
    token, grant = jobs.live.grant(request, caller.id)
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
