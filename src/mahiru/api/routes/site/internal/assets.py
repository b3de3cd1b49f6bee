"""Assets stored at a site, under `/internal/assets`: described, uploaded, listed, downloaded
and deleted by the owner party's users (changes by admins only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from pydantic import WithJsonSchema
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from mahiru.api.routes.site.dependencies import Admin, Jobs, Services, User
from mahiru.api.site_images import IMAGE_RESPONSES, IMAGE_UPLOAD_BODY, image_response
from mahiru.api.site_models import AssetList, AssetOut
from mahiru.errors import InvalidInput
from mahiru.model.identifiers import AssetId, ResultId, parse_identifier
from mahiru.model.serialization import ASSET_DESCRIPTION_SHAPE, asset_description_from_dict

#: An asset to describe, parsed by `asset_description_from_dict`.
Description = Annotated[
    dict[str, Any], Body(), WithJsonSchema(ASSET_DESCRIPTION_SHAPE.json_schema())
]

router = APIRouter(prefix="/internal", tags=["internal"])


def stored_asset_id(text: str) -> AssetId | ResultId:
    """An asset or result id from a URL path."""
    identifier = parse_identifier(text, ("asset", "result"))
    assert isinstance(identifier, AssetId | ResultId)  # guaranteed by the allowed kinds
    return identifier


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client hanging up is its mistake, not ours."""
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            yield chunk
    except ClientDisconnect:
        raise InvalidInput(f"the upload was interrupted after {received} bytes") from None


@router.post("/assets", response_model=AssetOut, summary="Describe an asset")
def add_asset(body: Description, caller: Admin, services: Services) -> AssetOut:
    """Describe an asset stored at this site (its image is uploaded separately).

    Describing it again with the same kind and metadata changes nothing.
    """
    return AssetOut.of(services.assets.add(asset_description_from_dict(body)))


@router.put(
    "/assets/{asset_id}/image",
    response_model=AssetOut,
    summary="Upload an asset's image",
    openapi_extra=IMAGE_UPLOAD_BODY,
)
async def upload_image(
    asset_id: str,
    request: Request,
    caller: Admin,
    services: Services,
    digest: Annotated[
        str, Header(alias="X-Mahiru-Digest", description="sha256:<hex> of the whole body")
    ],
) -> AssetOut:
    """Stream an asset's image; it is stored only if its sha256 equals the digest header."""
    length = request.headers.get("content-length")
    declared = int(length) if length is not None and length.isdigit() else None
    record = await services.assets.upload_image(
        stored_asset_id(asset_id),
        _body(request),
        digest,
        sender=str(caller.party),
        user=caller.person,
        declared_size=declared,
    )
    return AssetOut.of(record)


@router.get("/assets", response_model=AssetList, summary="List assets")
def list_assets(caller: User, services: Services) -> AssetList:
    """Every asset stored at this site, by id."""
    return AssetList(assets=[AssetOut.of(record) for record in services.assets.list()])


@router.get("/assets/{asset_id}", response_model=AssetOut, summary="Show an asset")
def get_asset(asset_id: str, caller: User, services: Services, jobs: Jobs) -> AssetOut:
    """One stored asset; a result reviewed for the caller's party carries the signed
    release to it and its approvals in its receipt chain."""
    record = services.assets.get(stored_asset_id(asset_id))
    return AssetOut.of(jobs.egress.shown_to(record, caller.party))


@router.get(
    "/assets/{asset_id}/image",
    response_class=Response,
    responses=IMAGE_RESPONSES,
    summary="Download an asset's image",
)
def download_image(
    asset_id: str,
    caller: User,
    jobs: Jobs,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
) -> Response:
    """Stream an asset's or result's image (or a byte range, to resume a download),
    if policy lets the caller's party use it; 403 with the explanation otherwise."""
    image = jobs.egress.to_party(stored_asset_id(asset_id), caller.party, user=caller.person)
    return image_response(image, range_header, if_range)


@router.delete("/assets/{asset_id}", response_model=AssetOut, summary="Delete an asset")
def delete_asset(asset_id: str, caller: Admin, services: Services) -> AssetOut:
    """Delete an asset, and its image unless another asset uses it."""
    return AssetOut.of(services.assets.delete(stored_asset_id(asset_id)))
