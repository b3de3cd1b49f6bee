"""Reviews of results' release as a site keeps them, each request and decision audited.

One row per release (result, receiving party, rule): storing a review for a release that
has one already hands back the stored one, also when two are stored at once, so a
release is never reviewed twice. A decision locks the row (PostgreSQL `SELECT ... FOR
UPDATE`), is checked by `Review.decide` against the state read, and is written, with its
audit record naming the person, only if the row is still pending.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from mahiru.errors import Conflict, Internal, InvalidInput, NotKnown
from mahiru.model.approvals import SignedApproval
from mahiru.model.audit import AuditEntry, AuditKind
from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId
from mahiru.model.prefixes import resolve_prefix
from mahiru.model.rejections import REJECTION_TYPE, SignedRejection
from mahiru.model.reviews import REVIEW_ID_PATTERN, Review, ReviewState
from mahiru.storage.audit import AuditLog
from mahiru.storage.db import Database, insert_ignoring_duplicates, positive_limit
from mahiru.storage.schema import reviews

#: The shortest review id prefix a lookup accepts (as for job ids).
MIN_PREFIX = 4
#: The most reviews one page holds.
MAX_PAGE = 500


class ReviewRepository:
    """The reviews of releases asked for at this site, and their decisions."""

    def __init__(self, database: Database, *, audit: AuditLog | None = None) -> None:
        self._db = database
        self._audit = audit if audit is not None else AuditLog(database)

    def add(self, review: Review) -> Review:
        """Store the pending `review` and record the request in the audit log.

        If its release (result, receiving party, rule) has a review already, that one
        is returned unchanged and nothing is recorded. Conflict if `review` is decided
        or its id belongs to another release.
        """
        if review.state is not ReviewState.PENDING:
            raise Conflict(
                f"review {review.review_id} is {review.state.value}: only a pending review"
                " is stored as new",
                {"review_id": review.review_id},
            )
        with self._db.transaction() as session:
            if insert_ignoring_duplicates(session, reviews, _values(review)):
                self._audit.record(request_entry(review))
                return review
            stored = _newest(
                session, _release(review.result, review.receiving_party, review.rule_id)
            )
            if stored is None:
                raise Conflict(
                    f"review id {review.review_id} is taken by another release",
                    {"review_id": review.review_id},
                )
            return stored

    def get(self, review_id: str) -> Review:
        """The review with this id; NotKnown if there is none."""
        with self._db.read() as session:
            row = session.execute(select(reviews).where(reviews.c.id == review_id)).one_or_none()
        if row is None:
            raise NotKnown("review", review_id)
        return review_from_row(row)

    def find(self, id_or_prefix: str, *, reviewers: Collection[str] | None = None) -> Review:
        """The review with this id, or the one whose id starts with it (at least
        MIN_PREFIX characters); with `reviewers`, only among the reviews one of them is to
        decide (the others are as if they did not exist, also for telling prefixes apart).

        NotFound if none does; InvalidInput if it is no id text, too short, or starts
        several ids (naming some of them).
        """
        if not isinstance(id_or_prefix, str) or not REVIEW_ID_PATTERN.fullmatch(id_or_prefix):
            raise InvalidInput(
                f"{id_or_prefix!r} is not a review id or the start of one",
                {"review_id": id_or_prefix},
            )
        exact = _among(select(reviews).where(reviews.c.id == id_or_prefix), reviewers)
        with self._db.read() as session:
            row = session.execute(exact).one_or_none()
            if row is not None:
                return review_from_row(row)
            ids: list[str] = []
            if len(id_or_prefix) >= MIN_PREFIX:
                starting = select(reviews.c.id).where(
                    reviews.c.id.startswith(id_or_prefix, autoescape=True)
                )
                ids = list(session.execute(_among(starting, reviewers)).scalars())
        found = resolve_prefix(
            id_or_prefix,
            ids,
            what="review id",
            minimum=MIN_PREFIX,
            hint="the review list shows them",
        )
        return self.get(found)

    def list_reviews(
        self,
        state: ReviewState | None = None,
        *,
        reviewers: Collection[str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[Review], int]:
        """One page of the reviews (only those in `state`, if given, and only those one of
        `reviewers` is to decide, if given), newest first, and how many there are in all."""
        limit = min(positive_limit(limit), MAX_PAGE)
        statement = _among(select(reviews), reviewers)
        counting = _among(select(func.count()).select_from(reviews), reviewers)
        if state is not None:
            statement = statement.where(reviews.c.state == state.value)
            counting = counting.where(reviews.c.state == state.value)
        statement = (
            statement.order_by(reviews.c.requested_at.desc(), reviews.c.id)
            .offset(max(offset, 0))
            .limit(limit)
        )
        with self._db.read() as session:
            rows = session.execute(statement).all()
            total = session.execute(counting).scalar_one()
        return [review_from_row(row) for row in rows], int(total)

    def approval(self, review_id: str) -> SignedApproval | None:
        """The signed approval kept with review `review_id`; None if it has none (it is
        not approved, or was approved before approvals were signed)."""
        signed = self.signed_decision(review_id)
        return signed if isinstance(signed, SignedApproval) else None

    def signed_decision(self, review_id: str) -> SignedApproval | SignedRejection | None:
        """The signed statement of the decision on review `review_id`, an approval or a
        rejection; None if it has none (it is pending, or was decided before decisions,
        or rejections, were signed)."""
        with self._db.read() as session:
            body = session.execute(
                select(reviews.c.approval).where(reviews.c.id == review_id)
            ).scalar_one_or_none()
        if body is None:
            return None
        try:
            if isinstance(body, Mapping) and body.get("type") == REJECTION_TYPE:
                return SignedRejection.from_dict(body)
            return SignedApproval.from_dict(body)
        except InvalidInput as error:
            raise Internal(
                f"the signed decision of review {review_id} does not read: {error}"
            ) from error

    def for_release(
        self, result: ResultId, receiving_party: PartyId, rule_id: str
    ) -> Review | None:
        """The newest review of releasing `result` to `receiving_party` under rule
        `rule_id`; None if none was asked for."""
        with self._db.read() as session:
            return _newest(session, _release(result, receiving_party, rule_id))

    def rejection(self, result: ResultId, receiving_party: PartyId) -> Review | None:
        """The newest rejected review of releasing `result` to `receiving_party`, under
        any rule (also one revoked since); None if none was rejected."""
        statement = (
            select(reviews)
            .where(reviews.c.result_id == str(result))
            .where(reviews.c.receiving_party == str(receiving_party))
            .where(reviews.c.state == ReviewState.REJECTED.value)
        )
        with self._db.read() as session:
            return _newest(session, statement)

    def decide(
        self,
        review_id: str,
        state: ReviewState,
        *,
        at: datetime,
        by: str,
        party: PartyId,
        reason: str,
        override: bool = False,
        signed: Callable[[Review], SignedApproval | SignedRejection] | None = None,
        site: SiteId | None = None,
    ) -> Review:
        """Decide review `review_id` (`Review.decide`, whose errors it passes on) by the
        person `by` for `party`, and record the decision, naming them (and `site`, the
        site of `party` where it was taken, when that is another), in the audit log.
        The decision is kept with the statement `signed` signs of the decided review (an
        approval or a rejection).

        One transaction: NotKnown if there is no such review; a concurrent decision
        makes this one a Conflict.
        """
        with self._db.transaction() as session:
            row = session.execute(
                select(reviews).where(reviews.c.id == review_id).with_for_update()
            ).one_or_none()
            if row is None:
                raise NotKnown("review", review_id)
            current = review_from_row(row)
            decided = current.decide(
                state, at=at, by=by, party=party, reason=reason, override=override
            )
            values = _values(decided)
            fixed_fields = ("id", "result_id", "receiving_party", "rule_id", "reviewer", "job_id")
            for fixed in (*fixed_fields, "held_at"):
                del values[fixed]
            if signed is not None:
                values["approval"] = signed(decided).to_dict()
            written = session.execute(
                update(reviews)
                .where(reviews.c.id == review_id)
                .where(reviews.c.state == ReviewState.PENDING.value)
                .values(values)
                .returning(reviews.c.id)
            ).first()
            if written is None:
                raise Conflict(
                    f"review {review_id} was decided concurrently; read it again",
                    {"review_id": review_id},
                )
            self._audit.record(decision_entry(decided, site))
        return decided


def pending_review_count(database: Database) -> int:
    """How many reviews wait for a decision (for the site's metrics)."""
    with database.read() as session:
        count = session.execute(
            select(func.count())
            .select_from(reviews)
            .where(reviews.c.state == ReviewState.PENDING.value)
        ).scalar_one()
    return int(count)


def review_latencies(database: Database) -> list[float]:
    """Seconds from request to decision of every decided review (for the site's metrics)."""
    with database.read() as session:
        rows = session.execute(
            select(reviews.c.requested_at, reviews.c.decided_at).where(
                reviews.c.decided_at.is_not(None)
            )
        ).all()
    return [max((decided - requested).total_seconds(), 0.0) for requested, decided in rows]


def request_entry(review: Review) -> AuditEntry:
    """The record of a review asked for: which result, to whom, under which rule."""
    return AuditEntry(
        AuditKind.REVIEW,
        "request",
        review.state.value,
        party=str(review.receiving_party),
        job=review.job_id,
        asset=str(review.result),
        details={
            "review_id": review.review_id,
            "rule_id": review.rule_id,
            "reviewer": review.reviewer,
            "digest": review.digest,
            "failed_checks": review.failed_checks,
        },
    )


def decision_entry(review: Review, site: SiteId | None = None) -> AuditEntry:
    """The record of a review decided: by which person (`user`) for which party (`actor`),
    how, and why; and at which `site` of that party, when it was decided at another site."""
    details: dict[str, Any] = {
        "review_id": review.review_id,
        "rule_id": review.rule_id,
        "reviewer": review.reviewer,
        "digest": review.digest,
        "reason": review.reason,
        "override": review.override,
        "failed_checks": review.failed_checks,
    }
    if site is not None:
        details["site"] = str(site)
    return AuditEntry(
        AuditKind.REVIEW,
        "decide",
        review.state.value,
        actor=None if review.decided_by_party is None else str(review.decided_by_party),
        party=str(review.receiving_party),
        job=review.job_id,
        asset=str(review.result),
        details=details,
        user=review.decided_by,
    )


def _among(statement: Select[Any], reviewers: Collection[str] | None) -> Select[Any]:
    """`statement` narrowed to the reviews one of `reviewers` is to decide (None: all)."""
    if reviewers is None:
        return statement
    return statement.where(reviews.c.reviewer.in_(sorted(reviewers)))


def _release(result: ResultId, receiving_party: PartyId, rule_id: str) -> Select[Any]:
    return (
        select(reviews)
        .where(reviews.c.result_id == str(result))
        .where(reviews.c.receiving_party == str(receiving_party))
        .where(reviews.c.rule_id == rule_id)
    )


def _newest(session: Session, statement: Select[Any]) -> Review | None:
    row = session.execute(
        statement.order_by(reviews.c.requested_at.desc(), reviews.c.id.desc()).limit(1)
    ).one_or_none()
    return None if row is None else review_from_row(row)


def _values(review: Review) -> dict[str, Any]:
    return {
        "id": review.review_id,
        "result_id": str(review.result),
        "receiving_party": str(review.receiving_party),
        "rule_id": review.rule_id,
        "reviewer": review.reviewer,
        "job_id": review.job_id,
        "digest": review.digest,
        "checks": [dict(check) for check in review.checks],
        "state": review.state.value,
        "requested_at": review.requested_at,
        "decided_at": review.decided_at,
        "decided_by": review.decided_by,
        "decided_by_party": (
            None if review.decided_by_party is None else str(review.decided_by_party)
        ),
        "reason": review.reason,
        "override": review.override,
        "held_at": None if review.held_at is None else str(review.held_at),
    }


def review_from_row(row: Row[Any]) -> Review:
    """The review a row of the reviews table holds; Internal if it does not read."""
    data = row._mapping
    try:
        return Review(
            review_id=data["id"],
            result=ResultId.parse(data["result_id"]),
            receiving_party=PartyId.parse(data["receiving_party"]),
            rule_id=data["rule_id"],
            reviewer=data["reviewer"],
            job_id=JobId(data["job_id"]),
            digest=data["digest"],
            checks=tuple(data["checks"]),
            state=ReviewState(data["state"]),
            requested_at=data["requested_at"],
            decided_at=data["decided_at"],
            decided_by=data["decided_by"],
            decided_by_party=(
                None
                if data["decided_by_party"] is None
                else PartyId.parse(data["decided_by_party"])
            ),
            reason=data["reason"],
            override=bool(data["override"]),
            held_at=None if data["held_at"] is None else SiteId.parse(data["held_at"]),
        )
    except (InvalidInput, ValueError) as error:
        raise Internal(
            f"review {data['id']} is stored in a form that does not read: {error}"
        ) from error
