"""The dashboard's result downloads: a workflow output's files as one `.tar.gz`.

What the browser gets is the data the output's image holds under `/data` (the
files `mahiru jobs results` writes), not the container image itself. It leaves by
the same decision as the command line's download (`/internal/jobs/…/outputs/…/image`):
the job's output for a user who sees the job, released by the egress gate to the
user's party, audited as a transfer; a result the policy or a review holds back is
refused here as there.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from mahiru.api.routes.site.dashboard.pages import BASE
from mahiru.api.routes.site.dependencies import Jobs, Services, User
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import check_job_id
from mahiru.model.workflow import check_name

router = APIRouter(prefix=BASE, include_in_schema=False)


@router.get("/jobs/{job_id}/outputs/{name}/files.tar.gz")
def output_files(
    job_id: JobId, name: str, caller: User, services: Services, jobs: Jobs
) -> StreamingResponse:
    """The `/data` files of a succeeded job's output, packed under `<job>-<output>/`."""
    output = check_name(name, "output")
    result = jobs.submissions.output(check_job_id(job_id), output, caller.person)
    image = jobs.egress.to_party(result, caller.party, job_id=job_id, user=caller.person)
    folder = f"{job_id[:12]}-{output}"
    size, chunks = services.oversight.archives.gzipped(image, folder)
    return StreamingResponse(
        chunks,
        media_type="application/gzip",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{folder}.tar.gz"',
            "X-Content-Type-Options": "nosniff",
        },
    )
