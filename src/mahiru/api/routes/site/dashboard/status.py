"""The dashboard's status page: replication per source, and the container engine."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from mahiru.api.routes.site.dashboard.pages import BASE, Dashboard
from mahiru.api.routes.site.dependencies import Jobs, Services, User
from mahiru.errors import MahiruError

router = APIRouter(prefix=BASE, include_in_schema=False)


@router.get("/status")
def status(caller: User, dashboard: Dashboard, services: Services, jobs: Jobs) -> HTMLResponse:
    """The site's status, and whether its container engine answers."""
    try:
        running = jobs.running_step_count()
    except MahiruError as failure:
        engine = f"unavailable: {failure.message}"
    else:
        engine = f"reachable, {running} step container{'' if running == 1 else 's'} running"
    return dashboard.render(
        "status.html", caller, "Status", "Status", status=services.status(), engine=engine
    )
