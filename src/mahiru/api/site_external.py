"""The external API of a site, under `/external`: for the other registered sites.

Every endpoint needs a network certificate naming a site in the registry
replica (with the registered key). Asset metadata and images are served only
if this site's own policy engine lets the calling site access the asset;
the requester's plan is never trusted.
"""

# No `from __future__ import annotations`: FastAPI must see the dependency aliases
# defined inside the router factories, which string annotations would hide.

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from mahiru.api.auth import CertificateAuthenticator
from mahiru.api.registry_app import MAX_VERSION
from mahiru.api.site_images import IMAGE_RESPONSES, image_response
from mahiru.api.site_internal import stored_asset_id
from mahiru.api.site_models import AssetOut, RuleChangeBatch
from mahiru.model.registry import SiteRecord
from mahiru.services.jobs.egress import Egress
from mahiru.services.site import SiteServices


def registered_peer(
    services: SiteServices, auth: CertificateAuthenticator
) -> Callable[[Request], SiteRecord]:
    """A route dependency: the registered site calling, known by its certificate."""

    def peer(request: Request) -> SiteRecord:
        caller = auth.service(request)
        request.state.caller = caller
        return services.registered_sites.identify(caller.identity, caller.certificate)

    return peer


def external_router(
    services: SiteServices, egress: Egress, auth: CertificateAuthenticator
) -> APIRouter:
    """The routes of the external API, served by `services`; images leave through `egress`."""
    Peer = Annotated[SiteRecord, Depends(registered_peer(services, auth))]
    router = APIRouter(prefix="/external", tags=["external"])

    @router.get(
        "/rules/changes", response_model=RuleChangeBatch, summary="This site's rule changes"
    )
    def rule_changes(
        caller: Peer,
        since: Annotated[int, Query(ge=0, le=MAX_VERSION, description="the version last applied")],
        limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    ) -> RuleChangeBatch:
        """The signed rules and revocations published here after version `since`."""
        return RuleChangeBatch.of(services.rules.changes_since(since, limit=limit))

    @router.get("/assets/{asset_id}", response_model=AssetOut, summary="An asset's metadata")
    def asset_metadata(asset_id: str, caller: Peer) -> AssetOut:
        """An asset stored here, if policy lets the calling site access it."""
        identifier = stored_asset_id(asset_id)
        egress.release_to_site(identifier, caller.id)
        return AssetOut.of(services.assets.get(identifier))

    @router.get(
        "/assets/{asset_id}/image",
        response_class=Response,
        responses=IMAGE_RESPONSES,
        summary="Download an asset's image",
    )
    def asset_image(
        asset_id: str,
        caller: Peer,
        range_header: Annotated[str | None, Header(alias="Range")] = None,
        if_range: Annotated[str | None, Header(alias="If-Range")] = None,
    ) -> Response:
        """Stream an asset's image (or a byte range, to resume), if policy allows it."""
        image = egress.to_site(stored_asset_id(asset_id), caller.id)
        return image_response(image, range_header, if_range)

    return router
