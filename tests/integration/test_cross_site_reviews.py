"""A review whose reviewer is another party, with real sites on loopback: offered by the
holding site (p1's) to the reviewer party's site (p2's), its files read through the
holder's egress gate, decided there and reported back signed; a third party's site is
refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from tests.support.reviews import CrossSiteReviews, cross_site_reviews
from tests.support.sites import client_as
from tests.support.waiting import wait_until

from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.review_exchange import report_body
from mahiru.model.reviews import ReviewState
from mahiru.pki.signatures import SiteSignatures

pytestmark = pytest.mark.integration

FILES = {"counts.csv": b"n\n30\n"}
World = CrossSiteReviews


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with cross_site_reviews(tmp_path_factory.mktemp("cross-reviews"), FILES) as made:
        yield made


def test_the_review_is_offered_to_the_reviewer_party_s_site_and_listed_there(
    world: World,
) -> None:
    review = world.request()
    mirror = world.mirrored(review)
    assert mirror == replace(review, held_at=SiteId.parse(world.holder.id))
    with client_as(world.rita, world.reviewer_site.internal_url) as api:
        listed = api.get("/reviews", params={"state": "pending"}).json()["reviews"]
    assert review.review_id in {r["review_id"] for r in listed}


def test_files_come_through_the_holder_s_gate_and_a_third_party_is_refused(
    world: World,
) -> None:
    review = world.request()
    world.mirrored(review)
    with client_as(world.rita, world.reviewer_site.internal_url) as api:
        listing = api.get(f"/reviews/{review.review_id}/files").json()
        assert listing["files"] == [{"path": "counts.csv", "size": len(FILES["counts.csv"])}]
        answer = api.get(f"/reviews/{review.review_id}/files/counts.csv")
        assert answer.status_code == 200 and answer.content == FILES["counts.csv"]
    p3 = world.net.sites["p3"]
    with client_as(p3.identity, world.holder.external_url) as peer:
        refused = peer.get(f"/reviews/{review.review_id}/files")
        nothing = peer.get(f"/reviews/{'0' * 32}/files")
    # Not its owner's to review: answered as a review that is not there, learning nothing.
    assert refused.status_code == nothing.status_code == 404, refused.text
    assert refused.json()["error"]["message"] == f"review {review.review_id} is not known here"


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_decision_at_the_reviewer_site_is_recorded_at_the_holder(
    world: World, action: str
) -> None:
    review = world.request()
    world.mirrored(review)
    with client_as(world.rita, world.reviewer_site.internal_url) as api:
        decided = api.post(f"/reviews/{review.review_id}/{action}", json={"reason": "ok"})
        assert decided.status_code == 200, decided.text
    queue = world.holder.services.oversight.reviews
    held = wait_until(
        lambda: (r := queue.get(review.review_id)).state.decided and r,
        60,
        "the decision reported to the holder",
    )
    assert held.decided_by == f"rita@{world.reviewer_site.party.id}"
    assert str(held.decided_by_party) == world.reviewer_site.party.id
    approval = queue.approval(held)
    if action == "reject":
        assert held.state is ReviewState.REJECTED and approval is None
        return
    assert held.state is ReviewState.APPROVED and approval is not None
    assert approval.statement.site == SiteId.parse(world.reviewer_site.id)
    replica = world.holder.services.replication.replica
    SiteSignatures(lambda site: replica.site(site).tls_cert_pem)(
        approval.statement.site, approval.statement.canonical_bytes(), approval.signature
    )


def test_a_decision_reported_by_a_site_of_another_party_is_refused(world: World) -> None:
    review = world.request()
    world.mirrored(review)
    p3 = world.net.sites["p3"]
    forged = review.decide(
        ReviewState.REJECTED,
        at=review.requested_at,
        by=f"mallory@{world.reviewer_site.party.id}",
        party=PartyId.parse(world.reviewer_site.party.id),
        reason="forged",
    )
    with client_as(p3.identity, world.holder.external_url) as peer:
        answer = peer.post(f"/reviews/{review.review_id}/decision", json=report_body(forged, None))
    assert answer.status_code == 404, answer.text  # as for a review that is not there
    assert world.holder.services.oversight.reviews.get(review.review_id).state is (
        ReviewState.PENDING
    )
