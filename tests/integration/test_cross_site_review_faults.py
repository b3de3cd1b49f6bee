"""A review whose reviewer is another party, when things go wrong, with real sites on
loopback: the reviewer party's site is down when the review is offered (the offer is
tried again, backing off, and delivered once it is back), and decisions that are not the
reviewer's (another party's site, a forged or misplaced signature, another review, a
rejection without its signature) are refused and record nothing."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from tests.support.reviews import CrossSiteReviews, cross_site_reviews
from tests.support.sites import SiteServer, client_as
from tests.support.waiting import wait_until

from mahiru.model.approvals import ApprovalStatement, SignedApproval
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.rejections import RejectionStatement, SignedRejection
from mahiru.model.review_exchange import report_body
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki import load_tls_private_key
from mahiru.pki.signatures import SiteSignatures, sign_with_tls_key

pytestmark = pytest.mark.integration

FILES = {"counts.csv": b"n\n30\n"}
World = CrossSiteReviews


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with cross_site_reviews(tmp_path_factory.mktemp("cross-review-faults"), FILES) as made:
        yield made


class _Failures(logging.Handler):
    """When the holder's exchange failed to offer a review, per review id."""

    def __init__(self) -> None:
        super().__init__()
        self.times: dict[str, list[float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        action = str(getattr(record, "action", ""))
        if action.startswith("offer review "):
            self.times.setdefault(action.split()[2], []).append(record.created)


def test_an_offer_to_a_site_that_is_down_is_tried_again_backing_off_until_it_is_back(
    world: World,
) -> None:
    """p2's site is down when p1 asks for the review: the review stays pending and
    unoffered while each try fails, the tries come no faster than the back-off allows
    (1 s, then 2 s), and once p2's site is back the offer is delivered and listed there."""
    logger = logging.getLogger("mahiru.site.reviews")
    failures, level = _Failures(), logger.level
    logger.addHandler(failures)
    logger.setLevel(logging.INFO)  # each failed try is logged at INFO
    world.reviewer_site.stop()
    try:
        review = world.request()
        tries = wait_until(
            lambda: len(t := failures.times.get(review.review_id, [])) >= 3 and t,
            60,
            "three failed offers",
        )
        gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
        print(f"failed offers {len(tries)}, gaps {[round(g, 2) for g in gaps]}")
        assert gaps[0] >= 0.9 and gaps[1] >= 1.9, gaps  # 1 s, then 2 s: backing off
        held = world.held(review.review_id)
        assert held.state is ReviewState.PENDING and held.held_at is None
        assert world.exchange().offered_to(review.review_id) == ()
    finally:
        logger.removeHandler(failures)
        logger.setLevel(level)
        world.reviewer_site.start()
    world.exchange().wake()
    mirror = world.mirrored(review)
    assert mirror == replace(review, held_at=SiteId.parse(world.holder.id))
    offered = wait_until(
        lambda: world.exchange().offered_to(review.review_id), 60, "the offer noted delivered"
    )
    assert offered == (SiteId.parse(world.reviewer_site.id),)
    with client_as(world.rita, world.reviewer_site.internal_url) as api:
        listed = api.get("/reviews", params={"state": "pending"}).json()["reviews"]
    assert review.review_id in {r["review_id"] for r in listed}


def _signed(site: SiteServer, statement: ApprovalStatement) -> SignedApproval:
    """`statement` signed with `site`'s TLS key."""
    key = load_tls_private_key(site.identity.key)
    return SignedApproval(statement, sign_with_tls_key(key, statement.canonical_bytes()))


def _approved(world: World, review: Review, by: str = "rita") -> Review:
    """`review` approved by `by` of p2, as p2's site reports it."""
    return review.decide(
        ReviewState.APPROVED,
        at=review.requested_at + timedelta(seconds=1),
        by=f"{by}@{world.reviewer_site.party.id}",
        party=PartyId.parse(world.reviewer_site.party.id),
        reason="aggregates only",
    )


def _forgery(world: World, case: str, review: Review) -> tuple[SiteServer, str, dict[str, Any]]:
    """Who sends what where, for each way of forging the approval of `review`."""
    p2, p3 = world.reviewer_site, world.net.sites["p3"]
    decided = _approved(world, review)
    url = f"/reviews/{review.review_id}/decision"
    statement = ApprovalStatement.of_review(decided, SiteId.parse(p2.id), world.rule)
    if case == "from another party's site":  # p3 signs for p2's decision, and sends it
        as_p3 = replace(statement, site=SiteId.parse(p3.id))
        return p3, url, report_body(decided, _signed(p3, as_p3))
    if case == "signature flipped":
        signed = _signed(p2, statement)
        signature = bytearray(signed.signature)
        signature[len(signature) // 2] ^= 0x01
        return p2, url, report_body(decided, replace(signed, signature=bytes(signature)))
    if case == "signed with another site's key":
        return p2, url, report_body(decided, _signed(p3, statement))
    if case == "signed as another site":
        as_p3 = replace(statement, site=SiteId.parse(p3.id))
        return p2, url, report_body(decided, _signed(p3, as_p3))
    if case == "approval of another review":
        other = world.request()
        world.mirrored(other)
        elsewhere = ApprovalStatement.of_review(
            _approved(world, other), SiteId.parse(p2.id), world.rule
        )
        return p2, url, report_body(decided, _signed(p2, elsewhere))
    if case == "approval stating another decision":
        by_mallory = ApprovalStatement.of_review(
            _approved(world, review, "mallory"), SiteId.parse(p2.id), world.rule
        )
        return p2, url, report_body(decided, _signed(p2, by_mallory))
    if case == "decision on another review":
        other = world.request()
        world.mirrored(other)
        decided_other = _approved(world, other)
        mine = ApprovalStatement.of_review(decided_other, SiteId.parse(p2.id), world.rule)
        return p2, url, report_body(decided_other, _signed(p2, mine))
    if case == "decision on another release":
        moved = replace(decided, receiving_party=PartyId("p9.org", "elsewhere"))
        mine = ApprovalStatement.of_review(moved, SiteId.parse(p2.id), world.rule)
        return p2, url, report_body(moved, _signed(p2, mine))
    raise AssertionError(case)


#: Each forgery's answer: its status and what its message says.
FORGERIES = {
    "from another party's site": (404, "is not known here"),
    "signature flipped": (400, "the signature does not verify"),
    "signed with another site's key": (400, "the signature does not verify"),
    "signed as another site": (403, "not by site:p2.org:site, the site that reported it"),
    "approval of another review": (400, "states another decision"),
    "approval stating another decision": (400, "states another decision"),
    "decision on another review": (400, "the decision is on review"),
    "decision on another release": (400, "is about another release"),
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_a_forged_approval_is_refused_and_releases_nothing(world: World, case: str) -> None:
    """An approval the reviewer party's site did not sign for exactly this decision on
    exactly this review, or sent by a site of another party, is refused; the review stays
    pending, with no approval, and the genuine decision is taken after it."""
    review = world.request()
    world.mirrored(review)
    sender, url, body = _forgery(world, case, review)
    with client_as(sender.identity, world.holder.external_url) as peer:
        answer = peer.post(url, json=body)
    status, says = FORGERIES[case]
    assert answer.status_code == status and says in answer.json()["error"]["message"], answer.text
    held = world.held(review.review_id)
    queue = world.holder.services.oversight.reviews
    assert held.state is ReviewState.PENDING and queue.approval(held) is None

    genuine = _approved(world, review)
    statement = ApprovalStatement.of_review(
        genuine, SiteId.parse(world.reviewer_site.id), world.rule
    )
    with client_as(world.reviewer_site.identity, world.holder.external_url) as peer:
        taken = peer.post(url, json=report_body(genuine, _signed(world.reviewer_site, statement)))
    assert taken.status_code == 200, taken.text
    assert world.held(review.review_id).state is ReviewState.APPROVED


def _rejected(world: World, review: Review) -> Review:
    """`review` rejected by rita of p2, as p2's site reports it."""
    return review.decide(
        ReviewState.REJECTED,
        at=review.requested_at + timedelta(seconds=1),
        by=f"rita@{world.reviewer_site.party.id}",
        party=PartyId.parse(world.reviewer_site.party.id),
        reason="column 3 names people",
    )


def _signed_rejection(site: SiteServer, statement: RejectionStatement) -> SignedRejection:
    key = load_tls_private_key(site.identity.key)
    return SignedRejection(statement, sign_with_tls_key(key, statement.canonical_bytes()))


def test_a_rejection_is_recorded_only_signed_by_the_reviewer_party_s_site(
    world: World,
) -> None:
    """A rejection reported without its signed statement, with a signature flipped, or
    signed by another site is refused and leaves the review pending; p2's site's own
    rejection, decided by its reviewer, reaches the holder with a signature that verifies."""
    review = world.request()
    world.mirrored(review)
    decided = _rejected(world, review)
    p2, p3 = world.reviewer_site, world.net.sites["p3"]
    statement = RejectionStatement.of_review(decided, SiteId.parse(p2.id))
    genuine = _signed_rejection(p2, statement)
    flipped = bytearray(genuine.signature)
    flipped[len(flipped) // 2] ^= 0x01
    url = f"/reviews/{review.review_id}/decision"
    for signed, says in (
        (None, "comes without its signed statement"),
        (replace(genuine, signature=bytes(flipped)), "the signature does not verify"),
        (_signed_rejection(p3, statement), "the signature does not verify"),
    ):
        with client_as(p2.identity, world.holder.external_url) as peer:
            answer = peer.post(url, json=report_body(decided, signed))
        assert answer.status_code == 400 and says in answer.json()["error"]["message"], answer.text
        assert world.held(review.review_id).state is ReviewState.PENDING

    with client_as(world.rita, p2.internal_url) as api:
        rejected = api.post(f"/reviews/{review.review_id}/reject", json={"reason": "no"})
    assert rejected.status_code == 200, rejected.text
    queue = world.holder.services.oversight.reviews
    held = wait_until(
        lambda: (r := world.held(review.review_id)).state.decided and r, 60, "the rejection"
    )
    assert held.state is ReviewState.REJECTED
    kept = queue.signed_decision(held)
    assert isinstance(kept, SignedRejection)
    assert kept.statement == RejectionStatement.of_review(held, SiteId.parse(p2.id))
    replica = world.holder.services.replication.replica
    SiteSignatures(lambda site: replica.site(site).tls_cert_pem)(
        kept.statement.site, kept.statement.canonical_bytes(), kept.signature
    )
