"""The site's Prometheus metrics, under `/internal/metrics`: for its admins and the users
named in `metrics_scrapers`, and not in the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mahiru.api.auth import UserCaller
from mahiru.api.routes.scraping import Metrics, Scrapers
from mahiru.errors import PermissionDenied

router = APIRouter(prefix="/internal", include_in_schema=False)


@router.get("/metrics")
def read_metrics(request: Request, metrics: Metrics, scrapers: Scrapers) -> Response:
    """The site's Prometheus metrics, for its admins and configured scrapers."""
    caller = request.state.caller
    assert isinstance(caller, UserCaller)  # /internal/ admits users only
    if not caller.is_admin and caller.user.name not in scrapers:
        raise PermissionDenied(
            f"{caller} may not read the metrics: only admins and the users named in"
            " metrics_scrapers may"  # named by the setting: a refusal lists nobody
        )
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
