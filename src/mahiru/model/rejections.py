"""Signed rejections: what a reviewing site says, signed with its TLS key, when a
reviewer rejected the release of a result (`Review`).

A `RejectionStatement` names the review, result, image digest and receiving party, the
rule that asked for the review (by id), who decided for which party, when, why, and the
site that signs it. A rejection reported to the site holding the result (another
party's) is recorded there only with one, signed by the reporting site for exactly that
decision, as an approval is (`model/approvals.py`); it is written and read like the
other statements (`model/statements.py`). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import PartyId, ResultId, SiteId
from mahiru.model.reviews import Review, ReviewState
from mahiru.model.statements import (
    b64,
    canonical,
    digest_field,
    exact,
    identifier_field,
    split_signature,
    text_field,
    time_field,
)

#: The kind and version of a rejection, in its `type` field.
REJECTION_TYPE = "mahiru.rejection/1"


@dataclass(frozen=True, slots=True)
class RejectionStatement:
    """What a reviewing `site` signs when `decided_by` (for `decided_by_party`) rejected
    review `review_id`: releasing `result` (image `digest`) to `receiving_party`, as rule
    `rule_id` (naming `reviewer`) asked, because of `reason`."""

    review_id: str
    result: ResultId
    digest: str
    receiving_party: PartyId
    rule_id: str
    reviewer: str
    site: SiteId
    decided_by: str
    decided_by_party: PartyId
    decided_at: datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what is signed, in canonical form)."""
        return {
            "type": REJECTION_TYPE,
            "review_id": self.review_id,
            "result": str(self.result),
            "digest": self.digest,
            "receiving_party": str(self.receiving_party),
            "rule_id": self.rule_id,
            "reviewer": self.reviewer,
            "site": str(self.site),
            "decided_by": self.decided_by,
            "decided_by_party": str(self.decided_by_party),
            "decided_at": self.decided_at.isoformat(),
            "reason": self.reason,
        }

    def canonical_bytes(self) -> bytes:
        """The bytes the reviewing site signs."""
        return canonical_json(self.to_dict())

    @classmethod
    def of_review(cls, review: Review, site: SiteId) -> RejectionStatement:
        """The statement `site` signs of the rejected `review`; InvalidInput if it is not
        rejected."""
        if (
            review.state is not ReviewState.REJECTED
            or review.decided_at is None
            or review.decided_by is None
            or review.decided_by_party is None
            or review.reason is None
        ):
            raise InvalidInput(f"review {review.review_id} is not rejected: nothing to sign")
        return cls(
            review_id=review.review_id,
            result=review.result,
            digest=review.digest,
            receiving_party=review.receiving_party,
            rule_id=review.rule_id,
            reviewer=review.reviewer,
            site=site,
            decided_by=review.decided_by,
            decided_by_party=review.decided_by_party,
            decided_at=review.decided_at,
            reason=review.reason,
        )

    @classmethod
    def from_dict(cls, data: object) -> RejectionStatement:
        """Parse the JSON form strictly; InvalidInput naming what is wrong."""
        what = "rejection"
        d = exact(data, _KEYS, what, REJECTION_TYPE)
        statement = cls(
            review_id=text_field(d, "review_id", what),
            result=identifier_field(ResultId, d, "result", what),
            digest=digest_field(d, "digest", what),
            receiving_party=identifier_field(PartyId, d, "receiving_party", what),
            rule_id=digest_field(d, "rule_id", what),
            reviewer=text_field(d, "reviewer", what),
            site=identifier_field(SiteId, d, "site", what),
            decided_by=text_field(d, "decided_by", what),
            decided_by_party=identifier_field(PartyId, d, "decided_by_party", what),
            decided_at=time_field(d, "decided_at", what),
            reason=text_field(d, "reason", what, limit=10_000),
        )
        return canonical(statement, d, what)


@dataclass(frozen=True, slots=True)
class SignedRejection:
    """A rejection with the reviewing site's signature over its canonical bytes."""

    statement: RejectionStatement
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the statement's fields plus base64 `signature`."""
        return {**self.statement.to_dict(), "signature": b64(self.signature)}

    @classmethod
    def from_dict(cls, data: object) -> SignedRejection:
        """Parse the JSON form strictly."""
        body, signature = split_signature(data, "rejection")
        return cls(RejectionStatement.from_dict(body), signature)


_KEYS = {f.name for f in fields(RejectionStatement)} | {"type"}
