"""The dashboard's "Why?" page: a decision about one item of a job, and its explanation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from mahiru.api.routes.site.dashboard.pages import BASE, JOBS_PER_PAGE, Dashboard
from mahiru.api.routes.site.dependencies import Jobs, Services, User
from mahiru.errors import InvalidInput, MahiruError
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.jobs import check_job_id
from mahiru.policy.decisions import Decision
from mahiru.services.site import SiteServices

router = APIRouter(prefix=BASE, include_in_schema=False)


@router.get("/why")
def why(
    caller: User,
    dashboard: Dashboard,
    services: Services,
    jobs: Jobs,
    job: str | None = None,
    item: str | None = None,
    site: str | None = None,
    party: str | None = None,
) -> HTMLResponse:
    """Pick a job (the newest by default), an item and a site or party; see the decision."""
    recent, _ = jobs.recent_jobs(caller.person, limit=JOBS_PER_PAGE)
    chosen = check_job_id(job) if job else (recent[0].job_id if recent else None)
    items: list[str] = []
    decision: Decision | None = None
    error = None
    if chosen is not None:
        status, _ = jobs.submissions.get(chosen, caller.person)
        reader = services.policy.reader()
        items = sorted(str(key) for key in reader.job_permissions(status.job).items())
        if item and (site or party):
            try:
                decision = _explain(services, status.job, item, site, party)
            except MahiruError as failure:
                error = failure.message
    return dashboard.render(
        "why.html",
        caller,
        "Why?",
        "Why? A decision and its explanation",
        jobs=recent,
        chosen_job=chosen,
        items=items,
        chosen_item=item,
        sites=[str(record.id) for record in services.replication.replica.sites()],
        parties=[str(record.id) for record in services.replication.replica.parties()],
        chosen_site=site,
        chosen_party=party,
        decision=decision,
        error=error,
    )


def _explain(
    services: SiteServices, job: Any, item: str, site: str | None, party: str | None
) -> Decision:
    if site and party:
        raise InvalidInput("choose a site (access) or a party (use), not both")
    return services.policy.explain(
        job,
        WorkflowItem.parse(item, job.workflow),
        site=SiteId.parse(site) if site else None,
        party=PartyId.parse(party) if party else None,
    )
