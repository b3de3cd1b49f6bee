"""What the reviews of a release answer (policy/review_holds.py), and that the answer keeps
its type across the HTTP hop between sites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from mahiru.api.errors import error_response, status_for
from mahiru.client.http import error_from_response
from mahiru.errors import AwaitingReview, Conflict, PermissionDenied, ReleaseRejected
from mahiru.model.identifiers import JobId, PartyId, ResultId
from mahiru.model.reviews import Review, ReviewState
from mahiru.policy.review_holds import held_by

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
REVIEWER = PartyId("p2.example.org", "p2")
RECEIVER = PartyId("p1.example.org", "p1")
FAILED = {"check": "max_bytes", "passed": False, "detail": "20 bytes in 1 file, over 10"}


def pending(review_id: str, rule: str = "r1", *checks: dict[str, object]) -> Review:
    """A pending review of releasing one result to RECEIVER under rule `rule`."""
    return Review(
        review_id=review_id,
        result=ResultId("ab" * 32),
        receiving_party=RECEIVER,
        rule_id=rule,
        reviewer=str(REVIEWER),
        job_id=JobId("job-1"),
        digest="cd" * 32,
        checks=checks,
        state=ReviewState.PENDING,
        requested_at=T0,
    )


def decided(review: Review, state: ReviewState, reason: str = "fine") -> Review:
    return review.decide(
        state, at=T0 + timedelta(hours=1), by=f"ann@{REVIEWER}", party=REVIEWER, reason=reason
    )


def test_no_covering_rule_holds_nothing() -> None:
    """Without reviews (no rule covers the result) the release goes."""
    assert held_by([]) is None


def test_every_review_approved_lets_the_release_go() -> None:
    """Approved under each covering rule: released."""
    reviews = [decided(pending("a", "r1"), ReviewState.APPROVED)]
    reviews.append(decided(pending("b", "r2"), ReviewState.APPROVED))
    assert held_by(reviews) is None


def test_a_pending_review_holds_the_release_naming_reviewer_and_review() -> None:
    """One pending among approved ones: AwaitingReview (a Conflict, 409), naming the
    reviewer and the review in message and details."""
    held = held_by([decided(pending("a", "r1"), ReviewState.APPROVED), pending("b", "r2")])
    assert isinstance(held, AwaitingReview) and isinstance(held, Conflict)
    assert f"awaiting review by {REVIEWER} (review b)" in held.message
    assert held.details["review"] == "b" and held.details["reviewer"] == str(REVIEWER)
    assert held.details["pending"] == ["b"]
    assert status_for(held) == 409


def test_a_rejection_wins_over_pending_reviews_with_the_reviewers_reason() -> None:
    """A rejection is final: ReleaseRejected (403, a denial) carrying the reason, even
    while another rule's review is pending."""
    rejected = decided(pending("b", "r2"), ReviewState.REJECTED, "names a small town")
    held = held_by([pending("a", "r1"), rejected])
    assert isinstance(held, ReleaseRejected) and isinstance(held, PermissionDenied)
    assert "names a small town" in held.message
    assert held.details["reason"] == "names a small town" and held.details["review"] == "b"
    assert status_for(held) == 403


def test_several_pending_reviews_name_the_first_and_list_all() -> None:
    """Two pending: the first (rules' order) is named, both are listed."""
    held = held_by([pending("a", "r1"), pending("b", "r2", FAILED)])
    assert isinstance(held, AwaitingReview)
    assert held.details["review"] == "a" and held.details["pending"] == ["a", "b"]
    assert "1 more review" in held.message


def test_the_answers_keep_their_type_across_the_http_hop() -> None:
    """What a site answers (the one error shape) is raised again by the calling site's
    client as the same type with the same details."""
    for error in (
        held_by([pending("a")]),
        held_by([decided(pending("a"), ReviewState.REJECTED, "no")]),
    ):
        assert error is not None
        sent = error_response(error)
        response = httpx.Response(
            sent.status_code,
            content=bytes(sent.body),
            request=httpx.Request("GET", "https://site.test/external/results/x/image"),
        )
        again = error_from_response(response)
        assert type(again) is type(error)
        assert (again.message, again.details) == (error.message, error.details)
