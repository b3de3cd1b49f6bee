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

from mahiru.model import review_decisions
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import PartyId, ResultId, SiteId
from mahiru.model.reviews import Review, ReviewState
from mahiru.model.statements import b64, canonical, exact, split_signature

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
        return {"type": REJECTION_TYPE, **review_decisions.written(self)}

    def canonical_bytes(self) -> bytes:
        """The bytes the reviewing site signs."""
        return canonical_json(self.to_dict())

    @classmethod
    def of_review(cls, review: Review, site: SiteId) -> RejectionStatement:
        """The statement `site` signs of the rejected `review`; InvalidInput if it is not
        rejected."""
        return cls(**review_decisions.of_review(review, site, ReviewState.REJECTED))

    @classmethod
    def from_dict(cls, data: object) -> RejectionStatement:
        """Parse the JSON form strictly; InvalidInput naming what is wrong."""
        what = "rejection"
        d = exact(data, _KEYS, what, REJECTION_TYPE)
        return canonical(cls(**review_decisions.read(d, what)), d, what)


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
