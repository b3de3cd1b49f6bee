"""Whether the reviews of a release let it go: pure, on the reviews the gate found.

A release of a result that ReleaseReviewedBy rules cover goes out only when every
covering rule's review of that release (result, receiving party, rule) is approved. One
rejection holds it back for good, whatever the others say; otherwise any pending review
holds it until its reviewer decides. The gate (`services/jobs/egress/`) finds or asks
for the reviews and raises what `held_by` answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from mahiru.errors import AwaitingReview, ReleaseRejected
from mahiru.model.reviews import Review, ReviewState


def held_by(reviews: Sequence[Review]) -> AwaitingReview | ReleaseRejected | None:
    """What holds back a release whose covering rules' reviews are `reviews` (one per
    rule, in the rules' order): the first rejection, else the first pending review,
    as the error the gate raises; None once every one is approved (or there are none)."""
    for review in reviews:
        if review.state is ReviewState.REJECTED:
            return _rejected(review)
    pending = [review for review in reviews if review.state is ReviewState.PENDING]
    if not pending:
        return None
    first = pending[0]
    others = "" if len(pending) == 1 else f" (and {len(pending) - 1} more review(s))"
    return AwaitingReview(
        f"{first.result} is awaiting review by {first.reviewer} (review {first.review_id})"
        f" before it is released to {first.receiving_party}{others}",
        {
            **_about(first),
            "pending": [review.review_id for review in pending],
        },
    )


def _rejected(review: Review) -> ReleaseRejected:
    return ReleaseRejected(
        f"{review.result} may not be released to {review.receiving_party}: its reviewer"
        f" {review.reviewer} rejected it (review {review.review_id}): {review.reason}",
        {**_about(review), "reason": review.reason, "decided_by": review.decided_by},
    )


def _about(review: Review) -> dict[str, object]:
    return {
        "review": review.review_id,
        "reviewer": review.reviewer,
        "result": str(review.result),
        "receiving_party": str(review.receiving_party),
        "rule_id": review.rule_id,
    }
