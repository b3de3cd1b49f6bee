"""A review whose reviewer is another party, when things go wrong, with real sites on
loopback: the reviewer party's site is down when the review is offered (the offer is
tried again, backing off, and delivered once it is back), and decisions that are not the
reviewer's (another party's site, a forged or misplaced signature, another review) are
refused and record nothing."""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from tests.support.reviews import reviewed_result
from tests.support.sites import Network, SiteServer, network
from tests.support.waiting import wait_until

from mahiru.client.http import CLIENT_HEADER, TlsIdentity
from mahiru.errors import NotFound
from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki.names import Role
from mahiru.services.jobs.review_exchange import ReviewExchange

pytestmark = pytest.mark.integration

FILES = {"counts.csv": b"n\n30\n"}
PASSED = {"check": "max_bytes", "passed": True, "detail": "5 bytes"}


@dataclass
class World:
    net: Network
    holder: SiteServer
    reviewer_site: SiteServer
    rita: TlsIdentity
    result: ResultId
    digest: str
    rule_id: str
    rule: dict[str, Any]

    def request(self) -> Review:
        """A new review at p1's site, for p2 to decide."""
        return self.holder.services.oversight.reviews.request(
            self.result,
            PartyId("p9.org", f"r{secrets.token_hex(4)}"),
            self.rule_id,
            self.reviewer_site.party.id,
            JobId(secrets.token_hex(16)),
            self.digest,
            (PASSED,),
        )

    def held(self, review_id: str) -> Review:
        """The review as the holder keeps it now."""
        return self.holder.services.oversight.reviews.get(review_id)

    def mirrored(self, review: Review) -> Review:
        """The review as p2's site keeps it, once offered there."""
        reviews = self.reviewer_site.services.oversight.reviews
        return wait_until(
            lambda: _found(reviews, review.review_id), 60, "the review offered to p2's site"
        )

    def exchange(self) -> ReviewExchange:
        """The holder's review exchange."""
        return self.holder.site.jobs.loops.review_exchange


def _found(reviews: Any, review_id: str) -> Review | None:
    try:
        found: Review = reviews.get(review_id)
    except NotFound:  # not offered there yet
        return None
    return found


def _http(identity: TlsIdentity, base: str) -> httpx.Client:
    return httpx.Client(
        base_url=base, verify=identity.ssl_context(), timeout=30, headers={CLIENT_HEADER: "1"}
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("cross-review-faults")
    with network(root, lambda name: f"sqlite:///{root / name}.db") as net:
        net.replicate_all()
        holder, reviewer_site = net.sites["p1"], net.sites["p2"]
        made = reviewed_result(holder, FILES, reviewer_site.party.id)
        net.replicate_all()
        rule = holder.services.policy.rule(made.rule_id)
        assert rule is not None
        yield World(
            net,
            holder,
            reviewer_site,
            net.certs.user(reviewer_site.party, "rita", Role.REVIEWER.value),
            made.result,
            made.digest,
            made.rule_id,
            rule.to_dict(),
        )


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
    with _http(world.rita, world.reviewer_site.internal_url) as api:
        listed = api.get("/reviews", params={"state": "pending"}).json()["reviews"]
    assert review.review_id in {r["review_id"] for r in listed}
