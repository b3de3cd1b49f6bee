"""Signed rejections (model/rejections.py): the statement a reviewing site signs of a
rejected review, written one way and read strictly, and never read as an approval."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mahiru import pki
from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.approvals import SignedApproval
from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId
from mahiru.model.rejections import REJECTION_TYPE, RejectionStatement, SignedRejection
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki.signatures import SiteSignatures, sign_with_tls_key

SITE = SiteId.parse("site:p2.org:site2")
KEY = pki.issue_site_certificate(pki.create_network_ca(), str(SITE))
CERT = pki.certificate_pem(KEY.certificate)
AT = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)
PENDING = Review(
    review_id="r1",
    result=ResultId("a" * 64),
    receiving_party=PartyId.parse("party:p1.org:p1"),
    rule_id="b" * 64,
    reviewer="party:p2.org:p2",
    job_id=JobId("job-1"),
    digest="c" * 64,
    checks=(),
    state=ReviewState.PENDING,
    requested_at=AT,
)
REJECTED = PENDING.decide(
    ReviewState.REJECTED,
    at=AT,
    by="rita@party:p2.org:p2",
    party=PartyId.parse("party:p2.org:p2"),
    reason="column 3 names people",
)


def _signed(statement: RejectionStatement) -> SignedRejection:
    return SignedRejection(
        statement, sign_with_tls_key(KEY.private_key, statement.canonical_bytes())
    )


def test_a_signed_rejection_reads_back_and_verifies_with_the_site_s_certificate() -> None:
    signed = _signed(RejectionStatement.of_review(REJECTED, SITE))
    data = signed.to_dict()
    assert data["type"] == REJECTION_TYPE and data["reason"] == "column 3 names people"
    again = SignedRejection.from_dict(data)
    assert again == signed
    SiteSignatures(lambda site: CERT)(SITE, again.statement.canonical_bytes(), again.signature)


def test_a_changed_reason_no_longer_verifies() -> None:
    data = _signed(RejectionStatement.of_review(REJECTED, SITE)).to_dict()
    forged = SignedRejection.from_dict({**data, "reason": "fine after all"})
    with pytest.raises(InvalidSignature):
        SiteSignatures(lambda site: CERT)(
            SITE, forged.statement.canonical_bytes(), forged.signature
        )


def test_only_a_rejected_review_has_a_rejection_to_sign() -> None:
    with pytest.raises(InvalidInput, match="is not rejected"):
        RejectionStatement.of_review(PENDING, SITE)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"type": "mahiru.approval/1"}, "rejection type must be"),
        ({"extra": 1}, "has exactly the fields"),
        ({"decided_at": "2026-12-09T11:00:00+01:00"}, "must be in UTC"),
        ({"digest": "C" * 64}, "must be a hex sha256"),
    ],
)
def test_a_rejection_not_written_as_written_is_refused(
    change: dict[str, object], says: str
) -> None:
    data = _signed(RejectionStatement.of_review(REJECTED, SITE)).to_dict()
    with pytest.raises(InvalidInput, match=says):
        SignedRejection.from_dict({**data, **change})


def test_a_rejection_is_not_read_as_an_approval() -> None:
    data = _signed(RejectionStatement.of_review(REJECTED, SITE)).to_dict()
    with pytest.raises(InvalidInput):
        SignedApproval.from_dict(data)
