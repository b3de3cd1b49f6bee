"""What a site owes other sites about reviews: offers of reviews held here to the
sites of the reviewer's parties, and decisions taken here on mirrors, for the sites that
hold their results.

Each is kept in the review's own row until it is delivered (`offered_to`, the sites it
went to, comma-separated; `reported_at`), so whatever was not delivered is sent again,
also after a restart.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select, update

from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.reviews import Review, ReviewState
from mahiru.storage.db import Database
from mahiru.storage.reviews import review_from_row
from mahiru.storage.schema import reviews

#: The most reviews one round hands out.
BATCH = 100


class ReviewOutbox:
    """The reviews whose offer or decision is still to be delivered to another site."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def to_offer(self, owner: PartyId) -> list[Review]:
        """Pending reviews held here whose reviewer is a party other than `owner`, or a
        party category, and which were not yet offered to every site of it, oldest
        first."""
        statement = (
            select(reviews)
            .where(reviews.c.state == ReviewState.PENDING.value)
            .where(reviews.c.held_at.is_(None))
            .where(reviews.c.offered_to.is_(None))
            .where(reviews.c.reviewer != str(owner))
            .order_by(reviews.c.requested_at, reviews.c.id)
            .limit(BATCH)
        )
        with self._db.read() as session:
            return [review_from_row(row) for row in session.execute(statement).all()]

    def offered(self, review_id: str, sites: Collection[SiteId]) -> None:
        """Note that review `review_id` was delivered to each of `sites` (at least one),
        so it is offered no more."""
        if not sites:
            raise ValueError(f"review {review_id} is offered to at least one site")
        listed = ",".join(sorted(str(site) for site in sites))
        with self._db.transaction() as session:
            session.execute(
                update(reviews).where(reviews.c.id == review_id).values(offered_to=listed)
            )

    def offered_to(self, review_id: str) -> tuple[SiteId, ...]:
        """The sites review `review_id` was offered to, by id; none until it went to all
        it was to go to."""
        with self._db.read() as session:
            listed = session.execute(
                select(reviews.c.offered_to).where(reviews.c.id == review_id)
            ).scalar_one_or_none()
        return () if not listed else tuple(SiteId.parse(site) for site in listed.split(","))

    def to_report(self) -> list[Review]:
        """Mirrored reviews decided here whose decision has not reached the site that
        holds their result, oldest decision first."""
        statement = (
            select(reviews)
            .where(reviews.c.state != ReviewState.PENDING.value)
            .where(reviews.c.held_at.is_not(None))
            .where(reviews.c.reported_at.is_(None))
            .order_by(reviews.c.decided_at, reviews.c.id)
            .limit(BATCH)
        )
        with self._db.read() as session:
            return [review_from_row(row) for row in session.execute(statement).all()]

    def reported(self, review_id: str, at: datetime) -> None:
        """Note that the decision of mirrored review `review_id` was delivered at `at`."""
        with self._db.transaction() as session:
            session.execute(update(reviews).where(reviews.c.id == review_id).values(reported_at=at))
