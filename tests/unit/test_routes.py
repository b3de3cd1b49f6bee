"""Each route module is a router of its own: mounted alone on an app whose state holds
its collaborators (here fakes), it serves its routes, checks its caller, and reads the
services only through their own methods."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from mahiru.api.auth import UserCaller
from mahiru.api.errors import install_error_handlers
from mahiru.api.routes.site import SITE_ROUTERS
from mahiru.api.routes.site.dashboard import jobs as dashboard_jobs
from mahiru.api.routes.site.dashboard import status as dashboard_status
from mahiru.api.routes.site.dashboard.pages import DashboardPages
from mahiru.api.routes.site.internal import rules
from mahiru.clock import SYSTEM_CLOCK
from mahiru.errors import Unavailable
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.people import Person
from mahiru.pki import Role, UserIdentity
from mahiru.services.site import SiteStatus

PARTY = "party:p1.org:p1"


class _Users:
    """An authenticator that takes every request as one user of p1."""

    def __init__(self, role: Role) -> None:
        self.caller = UserCaller(UserIdentity("alice", PARTY, role), certificate=None)  # type: ignore[arg-type]

    def user(self, request: Request) -> UserCaller:
        return self.caller


class _Jobs:
    """Job services that answer the dashboard's reads and remember what they were asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[Person, int, int]] = []

    def recent_jobs(self, person: Person, *, offset: int = 0, limit: int = 50) -> Any:
        self.asked.append((person, offset, limit))
        return [], 120

    def running_step_count(self) -> int:
        raise Unavailable("the container engine does not answer")


def _app(*routers: Any, role: Role = Role.USER, **state: Any) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.authenticator = _Users(role)
    app.state.clock = SYSTEM_CLOCK
    app.state.dashboard = DashboardPages("site:p1.org:site", SYSTEM_CLOCK)
    for name, value in state.items():
        setattr(app.state, name, value)
    for router in routers:
        app.include_router(router)
    return app


def _services() -> SimpleNamespace:
    return SimpleNamespace(
        site="site:p1.org:site",
        rules=SimpleNamespace(active=lambda: []),
        replica=SimpleNamespace(sources=lambda: [], rejected_rules=lambda: []),
        status=lambda: SimpleNamespace(),
    )


def test_a_route_module_serves_its_routes_alone() -> None:
    """The rules module alone answers GET /internal/rules from the services on the state."""
    with TestClient(_app(rules.router, services=_services())) as client:
        answer = client.get("/internal/rules")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"rules": []}


def test_an_admin_route_refuses_a_plain_user_before_reading_the_body() -> None:
    """Adding a rule needs the admin role: a plain user is refused (403), even with a body
    that would not validate."""
    with TestClient(_app(rules.router, services=_services())) as client:
        answer = client.post("/internal/rules", json={})
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["type"] == "PermissionDenied"
    assert "is not an admin" in answer.json()["error"]["message"]


def test_the_dashboard_lists_jobs_through_the_job_services_read_model() -> None:
    """The jobs page asks JobServices.recent_jobs for the caller's page of jobs."""
    jobs = _Jobs()
    with TestClient(_app(dashboard_jobs.router, services=_services(), jobs=jobs)) as client:
        page = client.get("/internal/ui/jobs", params={"page": 2})
    assert page.status_code == 200, page.text
    assert "120 jobs you submitted" in page.text and "page 2 of 3" in page.text
    assert jobs.asked == [(Person("alice", PartyId.parse(PARTY)), 50, 50)]


def test_the_dashboard_status_counts_step_containers_through_the_job_services() -> None:
    """The status page asks JobServices.running_step_count, and says when the engine is
    unavailable."""
    services = _services()
    services.status = lambda: SiteStatus(
        SiteId.parse("site:p1.org:site"), PartyId.parse(PARTY), 0, 0, 0, 0, []
    )
    app = _app(dashboard_status.router, services=services, jobs=_Jobs())
    with TestClient(app) as client:
        page = client.get("/internal/ui/status")
    assert page.status_code == 200, page.text
    assert "unavailable: the container engine does not answer" in page.text


def test_every_site_route_module_has_its_own_router() -> None:
    """The site's routers are distinct module-level objects, each with routes."""
    assert len({id(router) for router in SITE_ROUTERS}) == len(SITE_ROUTERS)
    assert all(router.routes for router in SITE_ROUTERS)
