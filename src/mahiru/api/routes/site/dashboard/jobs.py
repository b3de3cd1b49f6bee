"""The dashboard's job pages: the list, one job with its graph and timeline, and the
cancel form."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from mahiru.api.routes.site.dashboard.pages import (
    BASE,
    JOB_REFRESH_SECONDS,
    JOBS_PER_PAGE,
    Dashboard,
)
from mahiru.api.routes.site.dependencies import Jobs, SiteClock, User
from mahiru.api.svg import timeline, workflow_graph
from mahiru.errors import PermissionDenied
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import check_job_id

router = APIRouter(prefix=BASE, include_in_schema=False)


@router.get("/jobs")
def job_list(
    caller: User, dashboard: Dashboard, jobs: Jobs, page: Annotated[int, Query(ge=1)] = 1
) -> HTMLResponse:
    """One page of the jobs the caller sees, newest first."""
    listed, total = jobs.recent_jobs(
        caller.person, offset=(page - 1) * JOBS_PER_PAGE, limit=JOBS_PER_PAGE
    )
    pages_count = max((total + JOBS_PER_PAGE - 1) // JOBS_PER_PAGE, 1)
    return dashboard.render(
        "jobs.html",
        caller,
        "Jobs",
        "Jobs",
        jobs=listed,
        total=total,
        page=page,
        pages=pages_count,
        party=caller.party,
        admin=caller.is_admin,
    )


@router.get("/jobs/{job_id}")
def job_page(
    job_id: JobId, caller: User, dashboard: Dashboard, jobs: Jobs, clock: SiteClock
) -> HTMLResponse:
    """One job: its steps, workflow graph, timeline and outputs."""
    status, views = jobs.submissions.get(check_job_id(job_id), caller.person)
    steps = [view.status for view in views]
    by_step = {step.step: step for step in steps}
    workflow = status.job.workflow
    order = workflow.topological_order()
    sites = {} if status.plan is None else {s: str(v) for s, v in status.plan.assignments.items()}
    result_ids = status.job.result_ids()
    return dashboard.render(
        "job.html",
        caller,
        "Jobs",
        f"Job {status.job_id}",
        status=status,
        steps=by_step,
        graph=workflow_graph(workflow, {s.step: s.state for s in steps}, sites),
        timeline=timeline([by_step[s] for s in order if s in by_step], clock.now()),
        outputs={name: str(result_ids[ref]) for name, ref in workflow.outputs.items()},
        token=dashboard.cancel_token(caller, status.job_id),
        refresh=JOB_REFRESH_SECONDS,  # the page reloads itself until the job ends
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel(
    job_id: JobId, request: Request, caller: User, dashboard: Dashboard, jobs: Jobs
) -> RedirectResponse:
    """Cancel a job from its page's form, if the form's token is the one we gave."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0]
    if not hmac.compare_digest(token, dashboard.cancel_token(caller, check_job_id(job_id))):
        raise PermissionDenied(
            "the cancel form is out of date or was not made by this dashboard: reload the"
            " job's page and try again"
        )
    jobs.submissions.cancel(job_id, caller.person)
    return RedirectResponse(f"{BASE}/jobs/{job_id}", status_code=303)
