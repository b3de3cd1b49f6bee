"""The dashboard's entry and its stylesheet."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from mahiru.api.routes.site.dashboard.pages import BASE, Dashboard
from mahiru.api.routes.site.dependencies import User

router = APIRouter(prefix=BASE, include_in_schema=False)


@router.get("/style.css")
def style(caller: User, dashboard: Dashboard) -> Response:
    """The one stylesheet of every page."""
    return Response(dashboard.stylesheet, media_type="text/css")


@router.get("/")
def home(caller: User) -> RedirectResponse:
    """The dashboard opens on the jobs."""
    return RedirectResponse(f"{BASE}/jobs", status_code=303)
