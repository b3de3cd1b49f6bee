"""What sites tell each other about a review whose reviewer is another party: the offer
of a review held at one site to a site of the reviewer party, and the decision taken
there, reported back with its signed approval."""

from __future__ import annotations

from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.approvals import SignedApproval
from mahiru.model.fields import Field, Shape, nullable
from mahiru.model.reviews import REVIEW_SHAPE, Review

REVIEW_OFFER_SHAPE = Shape(
    "review offer",
    "A review held at the calling site, offered to a site of its reviewer party.",
    (Field("review", REVIEW_SHAPE.json_schema()),),
)

REVIEW_REPORT_SHAPE = Shape(
    "review report",
    "The decision taken on an offered review at a site of its reviewer party, and (for an"
    " approval) the approval that site signed.",
    (
        Field("review", REVIEW_SHAPE.json_schema()),
        Field(
            "approval",
            nullable({"type": "object", "description": "the signed approval (approving only)"}),
        ),
    ),
)


def review_offer(body: object) -> Review:
    """The review of an offer's JSON form `{review}`; InvalidInput naming what is wrong."""
    return Review.from_dict(REVIEW_OFFER_SHAPE.check(body)["review"])


def review_report(body: object) -> tuple[Review, SignedApproval | None]:
    """The decided review and signed approval of a report's JSON form `{review,
    approval}`; InvalidInput naming what is wrong."""
    data = REVIEW_REPORT_SHAPE.check(body)
    review = Review.from_dict(data["review"])
    if not review.state.decided:
        raise InvalidInput(f"review {review.review_id} is reported undecided")
    approval = data["approval"]
    return review, None if approval is None else SignedApproval.from_dict(approval)


def report_body(review: Review, approval: SignedApproval | None) -> dict[str, Any]:
    """The JSON form of a report of `review`'s decision."""
    return {
        "review": review.to_dict(),
        "approval": None if approval is None else approval.to_dict(),
    }
