"""Reviews of results' release, under `/internal/reviews`: for the reviewers of the site's
owner party.

A user with the reviewer or admin role sees and decides the reviews whose reviewer is
their party or a party category it is in (the site's policy says which); other reviews
are 404, exactly like ids that do not exist. Plain users get 403. Ids may be given by a
unique prefix. A reviewer inspects what they review through the egress gate: each read
of the result's files is decided, audited and recorded as a transfer to their party; for
a review offered by the site holding the result, through that site's gate.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import StreamingResponse
from pydantic import WithJsonSchema

from mahiru.api.routes.site.dependencies import Jobs, Reviewer, Services
from mahiru.errors import InvalidInput
from mahiru.model.reviews import REVIEW_DECISION_SHAPE, Review, ReviewState, review_decision

JsonObject = dict[str, Any]
#: A reviewer's decision, parsed by `review_decision`.
DecisionBody = Annotated[JsonObject, Body(), WithJsonSchema(REVIEW_DECISION_SHAPE.json_schema())]

router = APIRouter(prefix="/internal/reviews", tags=["reviews"])

_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file's bytes.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def review_state(text: str | None) -> ReviewState | None:
    """The state named by a query parameter (None: any); InvalidInput naming the states."""
    if text is None:
        return None
    try:
        return ReviewState(text)
    except ValueError:
        states = ", ".join(state.value for state in ReviewState)
        raise InvalidInput(f"unknown review state {text!r}; use one of {states}") from None


@router.get("", summary="List reviews")
def list_reviews(
    caller: Reviewer,
    services: Services,
    state: Annotated[str | None, Query(description="pending, approved or rejected")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JsonObject:
    """One page of the reviews the caller's party is to decide, newest first, and how
    many there are in all (`total`)."""
    reviews, total = services.oversight.reviews.visible_to(
        caller.person, review_state(state), offset=offset, limit=limit
    )
    return {"reviews": [r.to_dict() for r in reviews], "total": total}


def _review(services: Services, caller: Reviewer, review_id: str) -> Review:
    return services.oversight.reviews.find_for(caller.person, review_id)


@router.get("/{review_id}", summary="Show a review")
def get_review(review_id: str, caller: Reviewer, services: Services) -> JsonObject:
    """The review with this id (or unique id prefix): the result, to whom, under which
    rule, what the checks found, and the decision once taken."""
    return _review(services, caller, review_id).to_dict()


@router.post("/{review_id}/approve", summary="Approve a review")
def approve(review_id: str, body: DecisionBody, caller: Reviewer, services: Services) -> JsonObject:
    """Release the result, for the given reason; over a failed check only with
    `override`. 409 if the review is decided already, or a check failed without it."""
    reason, override = review_decision(body)
    review = _review(services, caller, review_id)
    decided = services.oversight.reviews.approve(
        review.review_id, caller.person, caller.party, reason, override=override
    )
    return decided.to_dict()


@router.post("/{review_id}/reject", summary="Reject a review")
def reject(review_id: str, body: DecisionBody, caller: Reviewer, services: Services) -> JsonObject:
    """Hold the result back for good, for the given reason (no `override`). 409 if the
    review is decided already."""
    reason, override = review_decision(body)
    if override:
        raise InvalidInput("override applies to approving only, not to rejecting")
    review = _review(services, caller, review_id)
    decided = services.oversight.reviews.reject(
        review.review_id, caller.person, caller.party, reason
    )
    return decided.to_dict()


@router.get("/{review_id}/files", summary="List the files of a result under review")
def files(review_id: str, caller: Reviewer, services: Services, jobs: Jobs) -> JsonObject:
    """The regular files under `/data` of the result's image: path and size each."""
    review = _review(services, caller, review_id)
    listing = jobs.loops.review_exchange.listing(review, caller.person)
    return {"review_id": review.review_id, "result": str(review.result), "files": listing}


@router.get(
    "/{review_id}/files/{path:path}",
    response_class=StreamingResponse,
    responses=_FILE_RESPONSES,
    summary="Download one file of a result under review",
)
def file(
    review_id: str, path: str, caller: Reviewer, services: Services, jobs: Jobs
) -> StreamingResponse:
    """The bytes of the file `/data/<path>` of the result's image."""
    review = _review(services, caller, review_id)
    size, chunks = jobs.loops.review_exchange.read(review, caller.person, path)
    return StreamingResponse(
        chunks, media_type="application/octet-stream", headers={"Content-Length": str(size)}
    )
