"""Reviews whose reviewer is another party, under `/external/reviews`: offered by the site
holding the result to a site of the reviewer party, its files read through the holder's
egress gate, and the decision reported back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import WithJsonSchema
from starlette.responses import StreamingResponse

from mahiru.api.routes.site.dependencies import Jobs, Peer
from mahiru.errors import InvalidInput
from mahiru.model.review_exchange import (
    REVIEW_OFFER_SHAPE,
    REVIEW_REPORT_SHAPE,
    review_offer,
    review_report,
)

JsonObject = dict[str, Any]
#: A review offered, parsed by `review_offer`.
Offer = Annotated[JsonObject, Body(), WithJsonSchema(REVIEW_OFFER_SHAPE.json_schema())]
#: A decision reported, parsed by `review_report`.
Report = Annotated[JsonObject, Body(), WithJsonSchema(REVIEW_REPORT_SHAPE.json_schema())]

router = APIRouter(prefix="/external", tags=["external"])


@router.post("/reviews", status_code=201, summary="Offer a review to the reviewer party")
def offer(body: Offer, caller: Peer, jobs: Jobs) -> JsonObject:
    """Keep a review held at the calling site for this site's reviewers, if this site's
    owner is its reviewer (403 otherwise); offering it again gives the one kept."""
    review = jobs.loops.review_exchange.receive_offer(review_offer(body), caller)
    return {"review": review.to_dict()}


@router.get("/reviews/{review_id}/files", summary="List the files of a result under review")
def files(review_id: str, caller: Peer, jobs: Jobs) -> JsonObject:
    """The files under `/data` of the result of a review held here, for the reviewers at
    the calling site: if this site's policy lets its owner review under the rule."""
    listing = jobs.loops.review_exchange.files_for_site(review_id, caller)
    return {"review_id": review_id, "files": listing}


@router.get(
    "/reviews/{review_id}/files/{path:path}",
    response_class=StreamingResponse,
    summary="Read one file of a result under review",
)
def file(review_id: str, path: str, caller: Peer, jobs: Jobs) -> StreamingResponse:
    """The bytes of the file `/data/<path>` of that result (as the listing)."""
    size, chunks = jobs.loops.review_exchange.file_for_site(review_id, caller, path)
    return StreamingResponse(
        chunks, media_type="application/octet-stream", headers={"Content-Length": str(size)}
    )


@router.post("/reviews/{review_id}/decision", summary="Report the decision on a review")
def decision(review_id: str, body: Report, caller: Peer, jobs: Jobs) -> JsonObject:
    """Record the decision taken at the calling site on a review held here: of the
    caller's owner party, which policy must let review under the rule, with the approval
    signed by the caller; the result is then released (or held back) as after a decision
    taken here."""
    decided, approval = review_report(body)
    if decided.review_id != review_id:
        raise InvalidInput(f"the decision is on review {decided.review_id}, not {review_id}")
    recorded = jobs.loops.review_exchange.receive_report(decided, approval, caller)
    return {"review": recorded.to_dict()}
