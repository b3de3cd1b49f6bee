"""Steps a site runs for jobs submitted elsewhere, under `/external/jobs`: handed over,
followed and cancelled by the job's submitter's site."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import StreamingResponse
from pydantic import WithJsonSchema

from mahiru.api.routes.site.dependencies import Jobs, Peer
from mahiru.api.text_streams import streamed_text
from mahiru.errors import InvalidInput
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import StepAssignment, check_job_id
from mahiru.model.jobs.handover import STEP_ASSIGNMENT_SHAPE
from mahiru.services.jobs.egress import StepView
from mahiru.services.jobs.step_changes import MAX_STEP_WAIT
from mahiru.services.jobs.step_logs import MAX_FOLLOW_SECONDS

JsonObject = dict[str, Any]
#: Steps handed over, parsed by `StepAssignment.from_dict`.
Assignment = Annotated[JsonObject, Body(), WithJsonSchema(STEP_ASSIGNMENT_SHAPE.json_schema())]

router = APIRouter(prefix="/external", tags=["external"])


def _steps(steps: list[StepView]) -> JsonObject:
    return {"steps": [s.to_dict() for s in steps]}


@router.post("/jobs/{job_id}/assignment", summary="Hand over steps")
def assign(job_id: JobId, body: Assignment, caller: Peer, jobs: Jobs) -> JsonObject:
    """Steps of a job for this site to run, from the job's submitter's site."""
    assignment = StepAssignment.from_dict(body)
    if assignment.job_id != job_id:
        raise InvalidInput(f"the assignment is for job {assignment.job_id}, not {job_id}")
    return _steps(jobs.assignments.receive(assignment, caller.id))


@router.get("/jobs/{job_id}/steps", summary="Step states")
async def step_states(
    job_id: JobId,
    caller: Peer,
    jobs: Jobs,
    after: Annotated[
        str | None,
        Query(max_length=64, description="the `version` the caller has: wait for another"),
    ] = None,
    wait: Annotated[
        float, Query(ge=0, le=MAX_STEP_WAIT, description="seconds to wait for a change, at most")
    ] = 0.0,
) -> JsonObject:
    """The states of the steps of a job that this site runs, and their `version`. With
    `after` and `wait`, answered once they differ from that version or after `wait`
    seconds (a long poll that holds no thread; a calling site may have a bounded number
    waiting, more are refused with 429)."""
    views, version = await jobs.assignments.statuses_after(
        check_job_id(job_id), caller.id, version=after, seconds=wait
    )
    return {**_steps(views), "version": version}


@router.get(
    "/jobs/{job_id}/readers", summary="A job's unfinished steps that read the caller's data"
)
def readers(
    job_id: JobId,
    caller: Peer,
    jobs: Jobs,
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


@router.get(
    "/jobs/{job_id}/steps/{step}/log",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}}},
    summary="Follow a step's log",
)
def followed_step_log(
    job_id: JobId,
    step: str,
    caller: Peer,
    jobs: Jobs,
    seconds: Annotated[float, Query(gt=0, le=MAX_FOLLOW_SECONDS)] = MAX_FOLLOW_SECONDS,
) -> StreamingResponse:
    """The log of a step this site runs, as it is written, until it ends: for the job's
    submitter's site only, and only where the job's party may use every output of the
    step (403 with the reason otherwise)."""
    return streamed_text(jobs.step_logs.for_peer(check_job_id(job_id), step, caller.id, seconds))


@router.post("/jobs/{job_id}/cancel", summary="Cancel steps")
def cancel_steps(job_id: JobId, caller: Peer, jobs: Jobs) -> JsonObject:
    """Cancel this site's unfinished steps of a job (the submitter's site only)."""
    return _steps(jobs.assignments.cancel(check_job_id(job_id), caller.id))
