"""Results made at a site, under `/external/results`: served to a site only if this
site's policy, applied to how the result was made, lets it have the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import Response

from mahiru.api.routes.site.dependencies import Jobs, Peer
from mahiru.api.site_images import IMAGE_RESPONSES, image_response
from mahiru.model.identifiers import ResultId, parse_identifier

router = APIRouter(prefix="/external", tags=["external"])


def _result_id(text: str) -> ResultId:
    identifier = parse_identifier(text, ("result",))
    assert isinstance(identifier, ResultId)  # guaranteed by the allowed kind
    return identifier


@router.get(
    "/results/{result_id}/image",
    response_class=Response,
    responses=IMAGE_RESPONSES,
    summary="Download a result",
)
def result_image(
    result_id: str,
    caller: Peer,
    jobs: Jobs,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
) -> Response:
    """A result's image, if this site's policy lets the caller access that result."""
    image = jobs.egress.to_site(_result_id(result_id), caller.id)
    return image_response(image, range_header, if_range)
