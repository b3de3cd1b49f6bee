"""What every dashboard page shares: where the pages live, the navigation, and the
renderer that fills the templates with the site, the caller and the time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from mahiru.api.auth import UserCaller
from mahiru.clock import Clock

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


class DashboardPages:
    """Renders the templates with what every page shows (site, caller, navigation), and
    signs the cancel forms: one per app, made when its routes are mounted."""

    def __init__(self, site: str, clock: Clock) -> None:
        self._env = Environment(
            loader=PackageLoader("mahiru.api", "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self._site = site
        self._clock = clock
        self._secret = secrets.token_bytes(32)  # cancel tokens are valid while this app runs
        self.stylesheet = files("mahiru.api").joinpath("templates/dashboard.css").read_bytes()

    def render(
        self, template: str, caller: UserCaller, section: str, title: str, **context: Any
    ) -> HTMLResponse:
        """The page `template` for `caller`, under `section` of the navigation."""
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

    def cancel_token(self, caller: UserCaller, job_id: str) -> str:
        """The token a cancel form for `job_id` carries, bound to `caller`."""
        message = f"{caller}|{job_id}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()


def dashboard_pages(request: Request) -> DashboardPages:
    """The app's dashboard renderer."""
    pages: DashboardPages = request.app.state.dashboard
    return pages


Dashboard = Annotated[DashboardPages, Depends(dashboard_pages)]
