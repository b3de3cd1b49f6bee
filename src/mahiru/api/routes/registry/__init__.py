"""The routes of the registry, mounted on the registry app in one order.

Every request has passed the authentication middleware before any of them
runs; each route refuses query parameters it does not take.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI

from mahiru.api.answers import EncodedAnswers
from mahiru.api.metrics import ServiceMetrics
from mahiru.api.routes.registry import changes, health, metrics, parties, registrations, sites
from mahiru.api.routes.scraping import publish_metrics
from mahiru.services.registry import RegistryService

#: Every router of the registry, in the order they are mounted.
REGISTRY_ROUTERS: tuple[APIRouter, ...] = (
    metrics.router,
    parties.router,
    sites.router,
    registrations.router,
    changes.router,
    health.router,
)


def mount_registry_routes(
    app: FastAPI,
    service: RegistryService,
    *,
    service_metrics: ServiceMetrics,
    metrics_scrapers: Iterable[str],
) -> None:
    """Serve every registry route on `app`, answered by `service`; `service_metrics` are
    served to the identities named in `metrics_scrapers`."""
    publish_metrics(app, service_metrics, metrics_scrapers)
    app.state.registry = service
    app.state.answers = EncodedAnswers()
    for router in REGISTRY_ROUTERS:
        app.include_router(router)
