"""The routes of a site: its internal API (`internal/`), external API (`external/`) and
dashboard (`dashboard/`), mounted on the site app in one order."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI

from mahiru.api.answers import EncodedAnswers
from mahiru.api.auth import CertificateAuthenticator
from mahiru.api.metrics import ServiceMetrics
from mahiru.api.routes.scraping import publish_metrics
from mahiru.api.routes.site import dashboard, external, internal
from mahiru.api.routes.site.dashboard.pages import DashboardPages
from mahiru.clock import Clock
from mahiru.services.site import SiteServices

#: Every router of a site, in the order they are mounted (which the OpenAPI document follows).
SITE_ROUTERS: tuple[APIRouter, ...] = (
    internal.metrics.router,
    internal.assets.router,
    internal.rules.router,
    internal.policy.router,
    internal.status.router,
    external.rules.router,
    external.assets.router,
    internal.jobs.router,
    internal.tes.router,
    external.steps.router,
    external.results.router,
    external.live.router,
    internal.audit.router,
    internal.reviews.router,
    external.reviews.router,
    dashboard.home.router,
    dashboard.jobs.router,
    dashboard.downloads.router,
    dashboard.reviews.router,
    dashboard.assets.router,
    dashboard.rules.router,
    dashboard.why.router,
    dashboard.audit.router,
    dashboard.status.router,
)


def mount_site_routes(
    app: FastAPI,
    *,
    services: SiteServices,
    authenticator: CertificateAuthenticator,
    clock: Clock,
    metrics: ServiceMetrics,
    metrics_scrapers: Iterable[str],
) -> None:
    """Serve every site route on `app`, whose state already holds `services` and the jobs.

    What the routes read besides is put on the app's state here
    (`site.dependencies`, `dashboard.pages`, `scraping`).
    """
    publish_metrics(app, metrics, metrics_scrapers)
    app.state.authenticator = authenticator
    app.state.clock = clock
    app.state.dashboard = DashboardPages(str(services.site), clock)
    app.state.answers = EncodedAnswers()
    for router in SITE_ROUTERS:
        app.include_router(router)
