"""Job routes of a site: `/internal/jobs` for its owner's users, `/external/jobs` and
`/external/results` for the other registered sites.

A plain user sees, cancels and downloads only the jobs they submitted; an
admin every job of their party (others' are 404, like jobs that do not exist).
A site may hand over or cancel steps only as the job's submitter's site, and
see step states only of jobs it takes part in. A result is served only if
this site's policy, applied to how the result was made, lets the caller have it.
"""

# No `from __future__ import annotations`: FastAPI must see the dependency aliases
# defined inside the router factories, which string annotations would hide.

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response, StreamingResponse

from mahiru.api.auth import CertificateAuthenticator, UserCaller, user_dependencies
from mahiru.api.site_external import registered_peer
from mahiru.api.site_images import DIGEST_HEADER, IMAGE_RESPONSES, image_response
from mahiru.api.site_models import JobIn
from mahiru.errors import InvalidInput
from mahiru.model.identifiers import AssetId, JobId, ResultId, SiteId, parse_identifier
from mahiru.model.jobs import JobStatus, StepAssignment, check_job_id
from mahiru.model.registry import SiteRecord
from mahiru.model.serialization import job_from_dict
from mahiru.services.jobs import JobServices
from mahiru.services.jobs.egress import StepView
from mahiru.services.jobs.live_grants import LiveGrantRequest
from mahiru.services.site import SiteServices

JsonObject = dict[str, Any]


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


class JobSubmission(BaseModel):
    """A job to plan and run."""

    model_config = ConfigDict(extra="forbid")
    job: JobIn


def _view(status: JobStatus, steps: list[StepView]) -> JsonObject:
    return {"job": status.to_dict(), "steps": [s.to_dict() for s in steps]}


def _steps(steps: list[StepView]) -> JsonObject:
    return {"steps": [s.to_dict() for s in steps]}


def _result_id(text: str) -> ResultId:
    identifier = parse_identifier(text, ("result",))
    assert isinstance(identifier, ResultId)  # guaranteed by the allowed kind
    return identifier


def internal_jobs_router(
    services: SiteServices, jobs: JobServices, auth: CertificateAuthenticator
) -> APIRouter:
    """The job routes of the internal API."""

    user, _ = user_dependencies(auth)
    User = Annotated[UserCaller, Depends(user)]
    router = APIRouter(prefix="/internal/jobs", tags=["jobs"])

    @router.post("", status_code=201, summary="Submit a job")
    def submit(body: JobSubmission, caller: User) -> JsonObject:
        """Plan a job of the caller's party and start it; 403 with the explanation if denied."""
        job = job_from_dict(body.job.model_dump())
        status = jobs.submissions.submit(job, caller.person)
        return _view(*jobs.submissions.get(status.job_id, caller.person))

    @router.get("", summary="List jobs")
    def list_jobs(caller: User) -> JsonObject:
        """The jobs submitted at this site that the caller sees (their own; an admin's:
        their party's), oldest first."""
        return {"jobs": [s.to_dict() for s in jobs.submissions.visible_to(caller.person)]}

    @router.get("/{job_id}", summary="A job's status, plan and steps")
    def get_job(job_id: JobId, caller: User) -> JsonObject:
        """The job, who submitted it, its plan and each step's state with timestamps."""
        return _view(*jobs.submissions.get(check_job_id(job_id), caller.person))

    @router.post("/{job_id}/cancel", summary="Cancel a job")
    def cancel_job(job_id: JobId, caller: User) -> JsonObject:
        """Cancel the job here and at the sites running its steps."""
        jobs.submissions.cancel(check_job_id(job_id), caller.person)
        return _view(*jobs.submissions.get(job_id, caller.person))

    @router.get("/{job_id}/provenance", summary="A job's provenance (W3C PROV-JSON)")
    def provenance(job_id: JobId, caller: User) -> JsonObject:
        """How the job made its results: inputs, compute assets, steps, sites, parties and
        the person who submitted it."""
        return jobs.submissions.provenance(check_job_id(job_id), caller.person)

    @router.get(
        "/{job_id}/outputs/{name}/image",
        response_class=Response,
        responses=IMAGE_RESPONSES,
        summary="Download a workflow output",
    )
    def output_image(
        job_id: JobId,
        name: str,
        caller: User,
        range_header: Annotated[str | None, Header(alias="Range")] = None,
        if_range: Annotated[str | None, Header(alias="If-Range")] = None,
    ) -> Response:
        """The image archive of a workflow output of a succeeded job."""
        result = jobs.submissions.output(check_job_id(job_id), name, caller.person)
        image = jobs.egress.to_party(result, caller.party, job_id=job_id, user=caller.person)
        return image_response(image, range_header, if_range)

    return router


def external_jobs_router(
    services: SiteServices, jobs: JobServices, auth: CertificateAuthenticator
) -> APIRouter:
    """The job and result routes of the external API."""
    Peer = Annotated[SiteRecord, Depends(registered_peer(services, auth))]
    router = APIRouter(prefix="/external", tags=["external"])

    @router.post("/jobs/{job_id}/assignment", summary="Hand over steps")
    def assign(job_id: JobId, body: Annotated[JsonObject, Body()], caller: Peer) -> JsonObject:
        """Steps of a job for this site to run, from the job's submitter's site."""
        assignment = StepAssignment.from_dict(body)
        if assignment.job_id != job_id:
            raise InvalidInput(f"the assignment is for job {assignment.job_id}, not {job_id}")
        return _steps(jobs.assignments.receive(assignment, caller.id))

    @router.get("/jobs/{job_id}/steps", summary="Step states")
    def step_states(job_id: JobId, caller: Peer) -> JsonObject:
        """The states of the steps of a job that this site runs."""
        return _steps(jobs.assignments.statuses(check_job_id(job_id), caller.id))

    @router.get(
        "/jobs/{job_id}/readers", summary="A job's unfinished steps that read the caller's data"
    )
    def readers(
        job_id: JobId,
        caller: Peer,
        job_digest: Annotated[
            str, Query(max_length=64, description="hex sha256 of the job's canonical JSON")
        ],
    ) -> JsonObject:
        """The unfinished steps of a job submitted here that read data stored at the caller,
        and where they run: all the caller learns of the job, which it asks before it
        grants a step live access to that data. Any other site, or a digest of another
        job, is answered as for a job that does not exist."""
        found = jobs.assignments.readers(check_job_id(job_id), caller.id, job_digest)
        return {"job_id": job_id, "readers": [reader.to_dict() for reader in found]}

    @router.post("/jobs/{job_id}/cancel", summary="Cancel steps")
    def cancel_steps(job_id: JobId, caller: Peer) -> JsonObject:
        """Cancel this site's unfinished steps of a job (the submitter's site only)."""
        return _steps(jobs.assignments.cancel(check_job_id(job_id), caller.id))

    @router.get(
        "/results/{result_id}/image",
        response_class=Response,
        responses=IMAGE_RESPONSES,
        summary="Download a result",
    )
    def result_image(
        result_id: str,
        caller: Peer,
        range_header: Annotated[str | None, Header(alias="Range")] = None,
        if_range: Annotated[str | None, Header(alias="If-Range")] = None,
    ) -> Response:
        """A result's image, if this site's policy lets the caller access that result."""
        image = jobs.egress.to_site(_result_id(result_id), caller.id)
        return image_response(image, range_header, if_range)

    @router.post("/live/grants", status_code=201, summary="Grant live access to a data asset")
    def live_grant(body: LiveGrantIn, caller: Peer) -> JsonObject:
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
    def live_files(token: str, caller: Peer) -> JsonObject:
        """The files of the granted asset's /data (the grantee site only)."""
        return {"files": jobs.egress.live_files(token, caller.id)}

    @router.get(
        "/live/{token}/files/{path:path}",
        response_class=StreamingResponse,
        summary="Read a file of a live data asset",
    )
    def live_file(token: str, path: str, caller: Peer) -> StreamingResponse:
        """One file of the granted asset's /data (the grantee site only), checked against
        its recorded sha256 as it is sent."""
        file = jobs.egress.live_file(token, caller.id, path)
        return StreamingResponse(
            file.read(),
            media_type="application/octet-stream",
            headers={"Content-Length": str(file.size), DIGEST_HEADER: f"sha256:{file.digest}"},
        )

    @router.delete("/live/{token}", summary="Revoke a live grant")
    def live_revoke(token: str, caller: Peer) -> JsonObject:
        """End a grant before it expires (the grantee site only)."""
        jobs.live.revoke(token, caller.id)
        return {"revoked": True}

    return router
