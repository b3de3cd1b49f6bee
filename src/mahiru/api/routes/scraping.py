"""What the metrics routes of both apps are handed: the app's metrics, and the identities
(registry) or user names (site) named in `metrics_scrapers`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from mahiru.api.metrics import ServiceMetrics


def publish_metrics(app: FastAPI, metrics: ServiceMetrics, scrapers: Iterable[str]) -> None:
    """Put `metrics` and who may scrape them on the app's state, for the metrics route."""
    app.state.metrics = metrics
    app.state.metrics_scrapers = frozenset(scrapers)


def app_metrics(request: Request) -> ServiceMetrics:
    """The app's metrics."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


def metrics_scrapers(request: Request) -> frozenset[str]:
    """Who may scrape the app's metrics besides its admins."""
    scrapers: frozenset[str] = request.app.state.metrics_scrapers
    return scrapers


Metrics = Annotated[ServiceMetrics, Depends(app_metrics)]
Scrapers = Annotated[frozenset[str], Depends(metrics_scrapers)]
