"""Jobs submitted at a site, under `/internal/jobs`: for the owner party's users.

A plain user sees, cancels and downloads only the jobs they submitted; an
admin every job of their party (others' are 404, like jobs that do not exist).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query
from pydantic import WithJsonSchema
from starlette.responses import Response, StreamingResponse

from mahiru.api.routes.site.dependencies import Jobs, Services, User
from mahiru.api.site_crates import CRATE_RESPONSES, crate_response
from mahiru.api.site_images import IMAGE_RESPONSES, image_response
from mahiru.api.text_streams import streamed_text
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import JobStatus, check_job_id
from mahiru.model.serialization import JOB_SUBMISSION_SHAPE, submitted_job
from mahiru.services.jobs.crates import JobCrates
from mahiru.services.jobs.egress import StepView
from mahiru.services.jobs.step_logs import MAX_FOLLOW_SECONDS

JsonObject = dict[str, Any]
#: A job submission, parsed by `submitted_job`.
Submission = Annotated[JsonObject, Body(), WithJsonSchema(JOB_SUBMISSION_SHAPE.json_schema())]

router = APIRouter(prefix="/internal/jobs", tags=["jobs"])


def _view(status: JobStatus, steps: list[StepView]) -> JsonObject:
    return {"job": status.to_dict(), "steps": [s.to_dict() for s in steps]}


@router.post("", status_code=201, summary="Submit a job")
def submit(body: Submission, caller: User, jobs: Jobs) -> JsonObject:
    """Plan a job of the caller's party and start it; 403 with the explanation if denied."""
    status = jobs.submissions.submit(submitted_job(body), caller.person)
    return _view(*jobs.submissions.get(status.job_id, caller.person))


@router.get("", summary="List jobs")
def list_jobs(caller: User, jobs: Jobs) -> JsonObject:
    """The jobs submitted at this site that the caller sees (their own; an admin's:
    their party's), oldest first."""
    return {"jobs": [s.to_dict() for s in jobs.submissions.visible_to(caller.person)]}


@router.get("/{job_id}", summary="A job's status, plan and steps")
def get_job(job_id: JobId, caller: User, jobs: Jobs) -> JsonObject:
    """The job, who submitted it, its plan and each step's state with timestamps."""
    return _view(*jobs.submissions.get(check_job_id(job_id), caller.person))


@router.post("/{job_id}/cancel", summary="Cancel a job")
def cancel_job(job_id: JobId, caller: User, jobs: Jobs) -> JsonObject:
    """Cancel the job here and at the sites running its steps."""
    jobs.submissions.cancel(check_job_id(job_id), caller.person)
    return _view(*jobs.submissions.get(job_id, caller.person))


@router.get("/{job_id}/provenance", summary="A job's provenance (W3C PROV-JSON)")
def provenance(job_id: JobId, caller: User, jobs: Jobs) -> JsonObject:
    """How the job made its results: inputs, compute assets, steps, sites, parties and
    the person who submitted it."""
    return jobs.submissions.provenance(check_job_id(job_id), caller.person)


@router.get(
    "/{job_id}/crate",
    response_class=Response,
    responses=CRATE_RESPONSES,
    summary="A job's RO-Crate (Provenance Run Crate, zip)",
)
def crate(job_id: JobId, caller: User, services: Services, jobs: Jobs) -> Response:
    """The job as a Workflow Run RO-Crate: workflow, steps and their runs, agents, the
    signed receipts, the PROV document, and the outputs the egress gate releases to the
    caller's party (docs/crates.md)."""
    crates = JobCrates(jobs.submissions, services.assets, jobs.egress)
    built, images = crates.crate(check_job_id(job_id), caller.person)
    return crate_response(built, images, f"job-{job_id}")


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
    jobs: Jobs,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
) -> Response:
    """The image archive of a workflow output of a succeeded job."""
    result = jobs.submissions.output(check_job_id(job_id), name, caller.person)
    image = jobs.egress.to_party(result, caller.party, job_id=job_id, user=caller.person)
    return image_response(image, range_header, if_range)


@router.get(
    "/{job_id}/steps/{step}/log",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}}},
    summary="Follow a step's log",
)
def step_log(
    job_id: JobId,
    step: str,
    caller: User,
    jobs: Jobs,
    seconds: Annotated[
        float, Query(gt=0, le=MAX_FOLLOW_SECONDS, description="stop following after this long")
    ] = MAX_FOLLOW_SECONDS,
) -> StreamingResponse:
    """The step's log as plain text, sent as it is written until the step ends (at once,
    as kept, for a step that ended); only where the job's party may use every output of
    the step (403 with the reason otherwise). Lines starting with `[mahiru]` are notes."""
    return streamed_text(jobs.step_logs.follow(check_job_id(job_id), step, caller.person, seconds))
