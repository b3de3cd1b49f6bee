"""The registry's Prometheus metrics, under `/metrics`: for the identities named in
`metrics_scrapers` only, and not in the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mahiru.api.routes.registry.dependencies import Caller
from mahiru.api.routes.scraping import Metrics, Scrapers
from mahiru.errors import PermissionDenied

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def read_metrics(caller: Caller, metrics: Metrics, scrapers: Scrapers) -> Response:
    """The registry's Prometheus metrics, for the identities named in metrics_scrapers."""
    if caller.identity not in scrapers:
        raise PermissionDenied(
            f"{caller} may not read the metrics: only the identities named in"
            " metrics_scrapers may"  # named by the setting: a refusal lists nobody
        )
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
