"""Assets stored at a site, under `/external/assets`: metadata and images for the sites
this site's policy lets access them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import Response

from mahiru.api.routes.site.dependencies import Jobs, Peer
from mahiru.api.routes.site.internal.assets import stored_asset_id
from mahiru.api.site_images import IMAGE_RESPONSES, image_response
from mahiru.api.site_models import AssetOut

router = APIRouter(prefix="/external", tags=["external"])


@router.get("/assets/{asset_id}", response_model=AssetOut, summary="An asset's metadata")
def asset_metadata(asset_id: str, caller: Peer, jobs: Jobs) -> AssetOut:
    """An asset stored here, if policy lets the calling site access it; a reviewed
    result's record carries the signed release to the caller's owner and its approvals."""
    return AssetOut.of(jobs.egress.record_for_site(stored_asset_id(asset_id), caller.id))


@router.get(
    "/assets/{asset_id}/image",
    response_class=Response,
    responses=IMAGE_RESPONSES,
    summary="Download an asset's image",
)
def asset_image(
    asset_id: str,
    caller: Peer,
    jobs: Jobs,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
) -> Response:
    """Stream an asset's image (or a byte range, to resume), if policy allows it."""
    image = jobs.egress.to_site(stored_asset_id(asset_id), caller.id)
    return image_response(image, range_header, if_range)
