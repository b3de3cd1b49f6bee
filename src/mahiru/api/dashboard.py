"""The web dashboard of a site, under `/internal/ui/`: pages rendered on the server.

It is part of the internal API, so a browser gets in with a user certificate
of the site's owner party, exactly like the command line; each page shows
what that user may see through the API (the jobs they submitted and the
audit records of their acts and jobs; for an admin, every job of the party
and every record). Graphs are SVG drawn here (`mahiru.api.svg`); no script
runs in the page, and its one stylesheet is served from here, so the pages
need nothing their Content-Security-Policy forbids
(`mahiru.api.middleware.SECURITY_HEADERS`). The one form that changes
something (cancelling a job) carries a token bound to the user and the job;
besides, the apps refuse every state change a browser sends for another web
site (`mahiru.api.middleware.CrossSiteRefusal`).
"""

# No `from __future__ import annotations`: FastAPI must see the dependency alias
# defined inside the router factory, which string annotations would hide.

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from mahiru.api.auth import CertificateAuthenticator, UserCaller, user_dependencies
from mahiru.api.site_audit import audit_kind, readable_party, readable_person
from mahiru.api.svg import timeline, workflow_graph
from mahiru.clock import Clock
from mahiru.errors import InvalidInput, MahiruError, PermissionDenied
from mahiru.model.audit import AuditKind, AuditRecord
from mahiru.model.identifiers import AssetId, JobId, PartyId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.jobs import check_job_id
from mahiru.policy.decisions import Decision
from mahiru.policy.permissions import primary
from mahiru.policy.rules import Rule
from mahiru.services.jobs import JobServices
from mahiru.services.site import SiteServices
from mahiru.storage import REGISTRY_SOURCE, AuditQuery

BASE = "/internal/ui"
API = "/internal"
JOBS_PER_PAGE = 50
RECORDS_PER_PAGE = 100
NAV = (
    ("Jobs", f"{BASE}/jobs"),
    ("Assets", f"{BASE}/assets"),
    ("Rules", f"{BASE}/rules"),
    ("Why?", f"{BASE}/why"),
    ("Audit", f"{BASE}/audit"),
    ("Status", f"{BASE}/status"),
)


def age(then: datetime, now: datetime) -> str:
    """`then` as a short age: 12 s, 5 min, 3 h, 2 d."""
    seconds = max((now - then).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


class _Pages:
    """Renders the templates with what every page shows (site, caller, navigation)."""

    def __init__(self, site: str, clock: Clock) -> None:
        self._env = Environment(
            loader=PackageLoader("mahiru.api", "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self._site = site
        self._clock = clock

    def render(
        self, template: str, caller: UserCaller, section: str, title: str, **context: Any
    ) -> HTMLResponse:
        now = self._clock.now()
        html = self._env.get_template(template).render(
            site=self._site,
            caller=str(caller),
            nav=NAV,
            section=section,
            title=title,
            base=BASE,
            api=API,
            age=lambda then: age(then, now),
            **context,
        )
        return HTMLResponse(html)


def dashboard_router(
    services: SiteServices,
    jobs: JobServices,
    auth: CertificateAuthenticator,
    clock: Clock,
) -> APIRouter:
    """The dashboard's pages (HTML), served to the owner party's users."""
    user, _ = user_dependencies(auth)
    User = Annotated[UserCaller, Depends(user)]
    router = APIRouter(prefix=BASE, include_in_schema=False)
    pages = _Pages(str(services.site), clock)
    secret = secrets.token_bytes(32)  # cancel tokens are valid while this process runs

    def cancel_token(caller: UserCaller, job_id: str) -> str:
        message = f"{caller}|{job_id}".encode()
        return hmac.new(secret, message, hashlib.sha256).hexdigest()

    stylesheet = files("mahiru.api").joinpath("templates/dashboard.css").read_bytes()

    @router.get("/style.css")
    def style(caller: User) -> Response:
        return Response(stylesheet, media_type="text/css")

    @router.get("/")
    def home(caller: User) -> RedirectResponse:
        return RedirectResponse(f"{BASE}/jobs", status_code=303)

    @router.get("/jobs")
    def job_list(caller: User, page: Annotated[int, Query(ge=1)] = 1) -> HTMLResponse:
        listed, total = jobs.recent_jobs(
            caller.party,
            submitted_by=caller.person.jobs_submitted_by(),
            offset=(page - 1) * JOBS_PER_PAGE,
            limit=JOBS_PER_PAGE,
        )
        pages_count = max((total + JOBS_PER_PAGE - 1) // JOBS_PER_PAGE, 1)
        return pages.render(
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
    def job_page(job_id: JobId, caller: User) -> HTMLResponse:
        status, views = jobs.submissions.get(check_job_id(job_id), caller.person)
        steps = [view.status for view in views]
        by_step = {step.step: step for step in steps}
        workflow = status.job.workflow
        order = workflow.topological_order()
        sites = (
            {} if status.plan is None else {s: str(v) for s, v in status.plan.assignments.items()}
        )
        result_ids = status.job.result_ids()
        return pages.render(
            "job.html",
            caller,
            "Jobs",
            f"Job {status.job_id}",
            status=status,
            steps=by_step,
            graph=workflow_graph(workflow, {s.step: s.state for s in steps}, sites),
            timeline=timeline([by_step[s] for s in order if s in by_step], clock.now()),
            outputs={name: str(result_ids[ref]) for name, ref in workflow.outputs.items()},
            token=cancel_token(caller, status.job_id),
        )

    @router.post("/jobs/{job_id}/cancel")
    async def cancel(job_id: JobId, request: Request, caller: User) -> RedirectResponse:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        if not hmac.compare_digest(token, cancel_token(caller, check_job_id(job_id))):
            raise PermissionDenied(
                "the cancel form is out of date or was not made by this dashboard: reload the"
                " job's page and try again"
            )
        jobs.submissions.cancel(job_id, caller.person)
        return RedirectResponse(f"{BASE}/jobs/{job_id}", status_code=303)

    @router.get("/assets")
    def assets(caller: User) -> HTMLResponse:
        reader = services.policy.reader()  # answers only: nothing here is audited
        site_ids = [record.id for record in services.replica.sites()]
        party_ids = [record.id for record in services.replica.parties()]

        def who(asset: Any) -> dict[str, Any]:
            text = str(asset)
            permissions = primary(asset)
            return {
                "id": text,
                "sites": [
                    str(site)
                    for site in site_ids
                    if reader.may_access(site, permissions, text).allowed
                ],
                "parties": [
                    str(party)
                    for party in party_ids
                    if reader.may_use(party, permissions, text).allowed
                ],
            }

        stored = []
        for record in services.assets.list():
            row = who(record.asset.id)
            digest = record.asset.image_digest
            row.update(
                kind=record.asset.kind.value,
                size=record.size if record.size is not None else "",
                digest=f"sha256:{digest[:16]}…" if digest else "no image",
            )
            stored.append(row)
        stored_ids = {row["id"] for row in stored}
        known = [
            who(asset) for asset in _assets_named(reader.rules()) if str(asset) not in stored_ids
        ]
        return pages.render("assets.html", caller, "Assets", "Assets", stored=stored, known=known)

    @router.get("/rules")
    def rules(caller: User) -> HTMLResponse:
        rows = [
            {
                "text": str(signed.rule),
                "signer": signed.rule.signer_namespace(),
                "source": "this site",
                "id": signed.rule_id,
            }
            for signed in services.rules.active()
        ]
        for source in services.replica.sources():
            if source == REGISTRY_SOURCE:
                continue
            rows.extend(
                {
                    "text": str(signed.rule),
                    "signer": signed.rule.signer_namespace(),
                    "source": source,
                    "id": signed.rule_id,
                }
                for signed in services.rules.replicated(source)
            )
        return pages.render(
            "rules.html",
            caller,
            "Rules",
            "Rules",
            rules=rows,
            rejected=services.replica.rejected_rules(),
        )

    @router.get("/why")
    def why(
        caller: User,
        job: str | None = None,
        item: str | None = None,
        site: str | None = None,
        party: str | None = None,
    ) -> HTMLResponse:
        recent, _ = jobs.recent_jobs(
            caller.party, submitted_by=caller.person.jobs_submitted_by(), limit=JOBS_PER_PAGE
        )
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
        return pages.render(
            "why.html",
            caller,
            "Why?",
            "Why? A decision and its explanation",
            jobs=recent,
            chosen_job=chosen,
            items=items,
            chosen_item=item,
            sites=[str(record.id) for record in services.replica.sites()],
            parties=[str(record.id) for record in services.replica.parties()],
            chosen_site=site,
            chosen_party=party,
            decision=decision,
            error=error,
        )

    @router.get("/audit")
    def audit(
        caller: User,
        job: str | None = None,
        asset: str | None = None,
        kind: str | None = None,
        before: Annotated[int | None, Query(ge=1)] = None,
    ) -> HTMLResponse:
        query = AuditQuery(
            job=job or None,
            asset=asset or None,
            kind=audit_kind(kind or None),
            party=readable_party(caller),
            person=readable_person(caller),
            before=before,
        )
        page = services.audit.page(query, RECORDS_PER_PAGE)
        filters = {"job": job or "", "asset": asset or "", "kind": kind or ""}
        more = f"{BASE}/audit?" + urlencode({**filters, "before": page.next or ""})
        return pages.render(
            "audit.html",
            caller,
            "Audit",
            "Audit log",
            check=services.audit.verify(full=False),
            query=query,
            kinds=[k.value for k in AuditKind],
            records=page.records,
            next=page.next,
            more=more,
            summary=_summary,
            details=lambda record: json.dumps(record.entry.details, indent=2, sort_keys=True),
        )

    @router.get("/status")
    def status(caller: User) -> HTMLResponse:
        try:
            running = jobs.running_step_count()
        except MahiruError as failure:
            engine = f"unavailable: {failure.message}"
        else:
            engine = f"reachable, {running} step container{'' if running == 1 else 's'} running"
        return pages.render(
            "status.html", caller, "Status", "Status", status=services.status(), engine=engine
        )

    return router


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


def _assets_named(rules: Iterable[Rule]) -> list[AssetId]:
    """Every asset id some rule names, sorted."""
    named = {
        value
        for rule in rules
        for value in (getattr(rule, f.name) for f in fields(rule))
        if isinstance(value, AssetId)
    }
    return sorted(named, key=str)


def _summary(record: AuditRecord) -> str:
    details = record.entry.details
    for key in ("decision", "reason", "rule"):
        value = details.get(key) if isinstance(details, dict) else None
        if value:
            return str(value)[:120]
    if record.entry.kind == AuditKind.TRANSFER and isinstance(details, dict):
        return f"{details.get('bytes')} bytes {details.get('from')} → {details.get('to')}"
    return "details"
