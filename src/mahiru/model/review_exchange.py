"""What sites tell each other about a review whose reviewer is another party: the offer
of a review held at one site to a site of the reviewer party, and the decision taken
there, reported back with its signed approval or rejection."""

from __future__ import annotations

from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.approvals import SignedApproval
from mahiru.model.fields import Field, Shape, nullable, optional
from mahiru.model.rejections import SignedRejection
from mahiru.model.reviews import REVIEW_SHAPE, Review, ReviewState

#: A decision's signed statement: an approval or a rejection.
SignedDecision = SignedApproval | SignedRejection

REVIEW_OFFER_SHAPE = Shape(
    "review offer",
    "A review held at the calling site, offered to a site of its reviewer party.",
    (Field("review", REVIEW_SHAPE.json_schema()),),
)

REVIEW_REPORT_SHAPE = Shape(
    "review report",
    "The decision taken on an offered review at a site of its reviewer party, and the"
    " approval or rejection that site signed.",
    (
        Field("review", REVIEW_SHAPE.json_schema()),
        Field(
            "approval",
            nullable({"type": "object", "description": "the signed approval (approving only)"}),
        ),
        optional(
            "rejection",
            nullable({"type": "object", "description": "the signed rejection (rejecting only)"}),
        ),
    ),
)


def review_offer(body: object) -> Review:
    """The review of an offer's JSON form `{review}`; InvalidInput naming what is wrong."""
    return Review.from_dict(REVIEW_OFFER_SHAPE.check(body)["review"])


def review_report(body: object) -> tuple[Review, SignedDecision | None]:
    """The decided review and the signed statement of its decision of a report's JSON form
    `{review, approval, rejection?}` (an approval only for an approved review, a
    rejection only for a rejected one); InvalidInput naming what is wrong."""
    data = REVIEW_REPORT_SHAPE.check(body)
    review = Review.from_dict(data["review"])
    if not review.state.decided:
        raise InvalidInput(f"review {review.review_id} is reported undecided")
    approval, rejection = data["approval"], data.get("rejection")
    if review.state is ReviewState.APPROVED:
        if rejection is not None:
            raise InvalidInput(f"review {review.review_id} is approved: it has no rejection")
        return review, None if approval is None else SignedApproval.from_dict(approval)
    if approval is not None:
        raise InvalidInput(f"review {review.review_id} is rejected: it has no approval")
    return review, None if rejection is None else SignedRejection.from_dict(rejection)


def report_body(review: Review, signed: SignedDecision | None) -> dict[str, Any]:
    """The JSON form of a report of `review`'s decision, with its `signed` statement."""
    return {
        "review": review.to_dict(),
        "approval": signed.to_dict() if isinstance(signed, SignedApproval) else None,
        "rejection": signed.to_dict() if isinstance(signed, SignedRejection) else None,
    }
