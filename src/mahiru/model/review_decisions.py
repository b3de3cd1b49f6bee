"""The fields a signed approval and a signed rejection share: which review of which
release, the rule that asked for it, who decided it for which party, when and why, and
the reviewing site that signs. Written, read and taken from a decided `Review` in one
place, so the two statements cannot drift apart. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from mahiru.errors import InvalidInput
from mahiru.model.identifiers import PartyId, ResultId, SiteId
from mahiru.model.reviews import Review, ReviewState
from mahiru.model.statements import digest_field, identifier_field, text_field, time_field

#: The shared fields, by name.
DECISION_FIELDS = frozenset(
    {
        "review_id",
        "result",
        "digest",
        "receiving_party",
        "rule_id",
        "reviewer",
        "site",
        "decided_by",
        "decided_by_party",
        "decided_at",
        "reason",
    }
)


class Decision(Protocol):
    """A statement of a reviewer's decision (approval or rejection)."""

    @property
    def review_id(self) -> str: ...
    @property
    def result(self) -> ResultId: ...
    @property
    def digest(self) -> str: ...
    @property
    def receiving_party(self) -> PartyId: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def reviewer(self) -> str: ...
    @property
    def site(self) -> SiteId: ...
    @property
    def decided_by(self) -> str: ...
    @property
    def decided_by_party(self) -> PartyId: ...
    @property
    def decided_at(self) -> datetime: ...
    @property
    def reason(self) -> str: ...


def written(statement: Decision) -> dict[str, Any]:
    """The shared fields' written (JSON) form."""
    return {
        "review_id": statement.review_id,
        "result": str(statement.result),
        "digest": statement.digest,
        "receiving_party": str(statement.receiving_party),
        "rule_id": statement.rule_id,
        "reviewer": statement.reviewer,
        "site": str(statement.site),
        "decided_by": statement.decided_by,
        "decided_by_party": str(statement.decided_by_party),
        "decided_at": statement.decided_at.isoformat(),
        "reason": statement.reason,
    }


def read(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The shared fields parsed from `data` strictly, as keyword arguments of the
    statement; InvalidInput naming the field that is wrong."""
    return {
        "review_id": text_field(data, "review_id", what),
        "result": identifier_field(ResultId, data, "result", what),
        "digest": digest_field(data, "digest", what),
        "receiving_party": identifier_field(PartyId, data, "receiving_party", what),
        "rule_id": digest_field(data, "rule_id", what),
        "reviewer": text_field(data, "reviewer", what),
        "site": identifier_field(SiteId, data, "site", what),
        "decided_by": text_field(data, "decided_by", what),
        "decided_by_party": identifier_field(PartyId, data, "decided_by_party", what),
        "decided_at": time_field(data, "decided_at", what),
        "reason": text_field(data, "reason", what, limit=10_000),
    }


def of_review(review: Review, site: SiteId, state: ReviewState) -> dict[str, Any]:
    """The shared fields `site` signs of `review`, decided as `state`, as keyword
    arguments of the statement; InvalidInput if the review is not so decided."""
    if (
        review.state is not state
        or review.decided_at is None
        or review.decided_by is None
        or review.decided_by_party is None
        or review.reason is None
    ):
        raise InvalidInput(f"review {review.review_id} is not {state.value}: nothing to sign")
    return {
        "review_id": review.review_id,
        "result": review.result,
        "digest": review.digest,
        "receiving_party": review.receiving_party,
        "rule_id": review.rule_id,
        "reviewer": review.reviewer,
        "site": site,
        "decided_by": review.decided_by,
        "decided_by_party": review.decided_by_party,
        "decided_at": review.decided_at,
        "reason": review.reason,
    }
