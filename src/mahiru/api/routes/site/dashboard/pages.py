"""What every dashboard page shares: where the pages live, the navigation, and the
renderer that fills the templates with the site, the caller and the time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any

from cryptography.hazmat.primitives import hashes
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from mahiru.api.auth import UserCaller
from mahiru.api.routes.site.dashboard.formats import FILTERS
from mahiru.clock import Clock
from mahiru.errors import PermissionDenied

BASE = "/internal/ui"
API = "/internal"
JOBS_PER_PAGE = 50
#: Assets on one page of the dashboard's Assets (stored and rule-named together).
ASSETS_PER_PAGE = 50
RECORDS_PER_PAGE = 100
#: How often the page of a job that has not ended reloads itself (seconds).
JOB_REFRESH_SECONDS = 5
NAV = (
    ("Jobs", f"{BASE}/jobs"),
    ("Reviews", f"{BASE}/reviews"),
    ("Assets", f"{BASE}/assets"),
    ("Rules", f"{BASE}/rules"),
    ("Why?", f"{BASE}/why"),
    ("Audit", f"{BASE}/audit"),
    ("Status", f"{BASE}/status"),
)
#: The sections of NAV shown only to users who may see reviews (reviewers and admins).
REVIEWERS_ONLY = frozenset({"Reviews"})


def age(then: datetime, now: datetime) -> str:
    """`then` as a short age: 12 s, 5 min, 3 h, 2 d."""
    seconds = max((now - then).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


class DashboardPages:
    """Renders the templates with what every page shows (site, caller, navigation), and
    signs the forms: one per app, made when its routes are mounted."""

    def __init__(self, site: str, clock: Clock) -> None:
        self._env = Environment(
            loader=PackageLoader("mahiru.api", "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self._env.filters.update(FILTERS)
        self._site = site
        self._clock = clock
        self._secret = secrets.token_bytes(32)  # form tokens are valid while this app runs
        self.stylesheet = files("mahiru.api").joinpath("templates/dashboard.css").read_bytes()

    def render(
        self, template: str, caller: UserCaller, section: str, title: str, **context: Any
    ) -> HTMLResponse:
        """The page `template` for `caller`, under `section` of the navigation."""
        now = self._clock.now()
        reviews = caller.person.reviews
        html = self._env.get_template(template).render(
            site=self._site,
            caller=str(caller),
            nav=[(name, url) for name, url in NAV if reviews or name not in REVIEWERS_ONLY],
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

    def review_token(self, caller: UserCaller, review_id: str) -> str:
        """The token the decision forms of review `review_id` carry, bound to the client
        certificate `caller` signed in with (another certificate of the same person gets
        another token) and to this run of the app."""
        certificate = caller.certificate.fingerprint(hashes.SHA256()).hex()
        message = f"review|{certificate}|{review_id}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def check_review_token(self, caller: UserCaller, review_id: str, token: str) -> None:
        """PermissionDenied unless `token` is the one `review_token` gives."""
        # Compared as bytes: compare_digest refuses str with characters outside ASCII.
        expected = self.review_token(caller, review_id).encode()
        if not hmac.compare_digest(token.encode("utf-8", "replace"), expected):
            raise PermissionDenied(
                "the review form is out of date or was not made by this dashboard for you:"
                " reload the review's page and try again"
            )


def dashboard_pages(request: Request) -> DashboardPages:
    """The app's dashboard renderer."""
    pages: DashboardPages = request.app.state.dashboard
    return pages


Dashboard = Annotated[DashboardPages, Depends(dashboard_pages)]
