"""Signed approvals and releases in a result's chain (docs/receipts.md, "Reviewed releases").

Result a is made at site2 (of party p2) from p2's data, which a ReleaseReviewedBy rule of
p2 covers; b is made at site1 (of party p1) from a. So a went from site2 to p1, and the
chain of b must carry site2's signed release of a to p1, the rule, and the approval by a
person of p2, signed by site2. Each forgery or omission is refused with its reason.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from mahiru import pki
from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.approvals import (
    ApprovalStatement,
    ReleaseEntry,
    ReleaseStatement,
    SignedApproval,
    SignedRelease,
)
from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId
from mahiru.model.receipts import Receipt, ReceiptChain, ReceiptInput, SignedReceipt
from mahiru.model.registry import PartyRecord
from mahiru.model.release_checks import verify_result
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki.signatures import SiteSignatures, sign_with_tls_key
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_rule
from mahiru.services.site.validation import release_trust

CA = pki.create_network_ca()
P1, P2 = PartyId.parse("party:p1.org:p1"), PartyId.parse("party:p2.org:p2")
SITE1, SITE2 = SiteId.parse("site:p1.org:site1"), SiteId.parse("site:p2.org:site2")
KEYS = {site: pki.issue_site_certificate(CA, str(site)) for site in (SITE1, SITE2)}
CERTS = {site: pki.certificate_pem(k.certificate) for site, k in KEYS.items()}
OWNERS = {SITE1: P1, SITE2: P2}
PARTY_KEYS = {P1: pki.generate_party_key(), P2: pki.generate_party_key()}
PARTIES = [
    PartyRecord(party, party.namespace, pki.public_key_pem(key.public_key()), "unused")
    for party, key in PARTY_KEYS.items()
]
AT = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)
RULE = sign_rule(
    rule_from_dict(
        {
            "type": "ReleaseReviewedBy",
            "asset": "asset:p2.org:d:p2.org:site2",
            "reviewer": str(P2),
        }
    ),
    PARTY_KEYS[P2],
)


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


A, B = ResultId(_hex("a")), ResultId(_hex("b"))
DA, DB = _hex("image a"), _hex("image b")
COMPUTE = ReceiptInput("compute", "asset:p1.org:script:p1.org:site1", _hex("script"))
DATA = ReceiptInput("input0", "asset:p2.org:d:p2.org:site2", _hex("d"))
CHECKS = ({"check": "max_bytes", "passed": False, "detail": "2 MB > 1 MB"},)


def _receipt(
    result: ResultId, digest: str, site: SiteId, inputs: list[ReceiptInput], reviewed: list[str]
) -> SignedReceipt:
    receipt = Receipt.of(
        result, digest, JobId("0" * 32), "s", "o", site, inputs, [_hex("rule")], AT, reviewed
    )
    return SignedReceipt(
        receipt, sign_with_tls_key(KEYS[site].private_key, receipt.canonical_bytes())
    )


def _review(**changes: Any) -> Review:
    pending = Review(
        review_id="rev-1",
        result=A,
        receiving_party=P1,
        rule_id=RULE.rule_id,
        reviewer=str(P2),
        job_id=JobId("0" * 32),
        digest=DA,
        checks=CHECKS,
        state=ReviewState.PENDING,
        requested_at=AT,
    )
    decided = pending.decide(
        ReviewState.APPROVED,
        at=AT.replace(hour=11),
        by=f"ann@{P2}",
        party=P2,
        reason="aggregates only",
        override=True,
    )
    return replace(decided, **changes)


def _approval(statement: ApprovalStatement | None = None, signer: SiteId = SITE2) -> SignedApproval:
    statement = statement or ApprovalStatement.of_review(_review(), SITE2, RULE.rule.to_dict())
    return SignedApproval(
        statement, sign_with_tls_key(KEYS[signer].private_key, statement.canonical_bytes())
    )


def _release(party: PartyId = P1, rules: tuple[str, ...] = (RULE.rule_id,)) -> SignedRelease:
    statement = ReleaseStatement.of(A, DA, party, SITE2, rules, AT.replace(hour=12))
    return SignedRelease(
        statement, sign_with_tls_key(KEYS[SITE2].private_key, statement.canonical_bytes())
    )


def _entry(**changes: Any) -> ReleaseEntry:
    entry = ReleaseEntry(_release(), (RULE.to_dict(),), (_approval(),))
    return replace(entry, **changes)


def _chain(*entries: ReleaseEntry, reviewed: bool = True) -> ReceiptChain:
    a = _receipt(A, DA, SITE2, [COMPUTE, DATA], [RULE.rule_id] if reviewed else [])
    b = _receipt(B, DB, SITE1, [COMPUTE, ReceiptInput("input0", str(A), DA)], [])
    return ReceiptChain((b, a), entries)


def _verify(chain: ReceiptChain) -> list[str]:
    """As `mahiru results verify` does: a JSON round trip, then every check."""
    chain = ReceiptChain.from_metadata(chain.to_metadata())
    trust = release_trust(lambda: PARTIES, OWNERS.get)
    return verify_result(B, DB, chain, SiteSignatures(CERTS.get), trust, released=True)


# -- the statement ----------------------------------------------------------------------


def test_an_approval_s_canonical_bytes_are_pinned() -> None:
    """Golden vector: the bytes a site signs for an approval never change (every approval
    signed before would stop verifying)."""
    statement = ApprovalStatement.of_review(_review(), SITE2, RULE.rule.to_dict())
    expected = (
        b'{"checks":[{"check":"max_bytes","detail":"2 MB > 1 MB","passed":false}],'
        b'"decided_at":"2026-12-09T11:00:00+00:00","decided_by":"ann@party:p2.org:p2",'
        b'"decided_by_party":"party:p2.org:p2","digest":"' + DA.encode() + b'",'
        b'"override":true,"reason":"aggregates only","receiving_party":"party:p1.org:p1",'
        b'"result":"' + str(A).encode() + b'","review_id":"rev-1",'
        b'"reviewer":"party:p2.org:p2","rule":{"asset":"asset:p2.org:d:p2.org:site2",'
        b'"reviewer":"party:p2.org:p2","type":"ReleaseReviewedBy"},'
        b'"rule_id":"' + RULE.rule_id.encode() + b'","site":"site:p2.org:site2",'
        b'"type":"mahiru.approval/1"}'
    )
    assert statement.canonical_bytes() == expected


def test_a_signed_approval_round_trips_and_verifies_with_the_site_key() -> None:
    """Parsed back from JSON, the approval is the same and its signature verifies."""
    approval = _approval()
    parsed = SignedApproval.from_dict(approval.to_dict())
    assert parsed == approval
    SiteSignatures(CERTS.get)(SITE2, parsed.statement.canonical_bytes(), parsed.signature)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("review_id", "rev-2"),
        ("result", str(B)),
        ("digest", DB),
        ("receiving_party", "party:p3.org:p3"),
        ("rule_id", _hex("other")),
        ("rule", {"type": "ReleaseReviewedBy", "asset": "asset:p2.org:x:p2.org:site2",
                  "reviewer": str(P2)}),
        ("reviewer", "party:p3.org:p3"),
        ("site", str(SITE1)),
        ("decided_by", f"bob@{P2}"),
        ("decided_by_party", "party:p3.org:p3"),
        ("decided_at", "2026-12-09T11:00:01+00:00"),
        ("reason", "other"),
        ("override", False),
        ("checks", []),
    ],
)  # fmt: skip
def test_each_field_of_an_approval_is_covered_by_its_signature(field: str, value: Any) -> None:
    """Changing any one field of a signed approval makes its signature fail."""
    data = _approval().to_dict()
    assert data[field] != value
    data[field] = value
    tampered = SignedApproval.from_dict(data)
    with pytest.raises(InvalidSignature, match="does not verify"):
        SiteSignatures(CERTS.get)(SITE2, tampered.statement.canonical_bytes(), tampered.signature)


def test_an_approval_not_in_canonical_form_or_of_another_type_is_refused() -> None:
    """A time in another written form, or a statement typed as something else, is refused
    as it is parsed."""
    data = _approval().to_dict()
    with pytest.raises(InvalidInput, match="'decided_at' is not in its canonical form"):
        SignedApproval.from_dict({**data, "decided_at": "2026-12-09T11:00:00.000+00:00"})
    with pytest.raises(InvalidInput, match="type must be"):
        SignedApproval.from_dict({**data, "type": "mahiru.release/1"})


def test_only_an_approved_review_makes_a_statement() -> None:
    """A pending review has no approval to sign."""
    pending = replace(
        _review(),
        state=ReviewState.PENDING,
        decided_at=None,
        decided_by=None,
        decided_by_party=None,
        reason=None,
        override=False,
    )
    with pytest.raises(InvalidInput, match="not approved"):
        ApprovalStatement.of_review(pending, SITE2, RULE.rule.to_dict())


# -- the verifier -----------------------------------------------------------------------


def test_a_chain_with_its_approved_release_verifies_and_shows_the_approver() -> None:
    """The release of a to p1 and its approval are shown: who, for which party, when, why,
    and the override."""
    lines = "\n".join(_verify(_chain(_entry())))
    assert f"{A}: released to {P1} by {SITE2}" in lines
    assert f"approved by ann@{P2} ({P2}) at 2026-12-09T11:00:00+00:00" in lines
    assert "OVERRIDING failed check(s) max_bytes" in lines and "'aggregates only'" in lines


def test_a_forged_approval_signature_is_refused() -> None:
    """An approval signed by another site's key than the one it names does not verify."""
    forged = _approval(signer=SITE1)
    with pytest.raises(InvalidSignature, match=f"registered certificate of {SITE2}"):
        _verify(_chain(_entry(approvals=(forged,))))


def test_an_approval_signed_by_a_site_of_another_party_is_refused() -> None:
    """site1 (of p1) cannot approve for p2, even signing correctly as itself."""
    statement = replace(_approval().statement, site=SITE1)
    with pytest.raises(InvalidInput, match=f"a site of {P1}, not of the deciding party {P2}"):
        _verify(_chain(_entry(approvals=(_approval(statement, SITE1),))))


def test_an_approval_of_another_result_is_refused() -> None:
    """A valid approval of another result does not approve this release."""
    statement = replace(_approval().statement, result=B)
    with pytest.raises(InvalidInput, match=f"is for result {B}"):
        _verify(_chain(_entry(approvals=(_approval(statement),))))


def test_an_approval_for_another_receiving_party_is_refused() -> None:
    """An approval of releasing a to p3 does not approve its release to p1."""
    statement = replace(_approval().statement, receiving_party=PartyId.parse("party:p3.org:p3"))
    with pytest.raises(InvalidInput, match=re.escape("is for receiving party party:p3.org:p3")):
        _verify(_chain(_entry(approvals=(_approval(statement),))))


def test_a_release_listing_a_rule_without_its_approval_is_refused() -> None:
    """A release that lists a review rule must carry that rule's approval."""
    with pytest.raises(
        InvalidInput, match=r"lists review rule \w+ but not its approval: a covered result lacks"
    ):
        _verify(_chain(_entry(approvals=())))


def test_a_chain_stripped_of_the_release_is_refused() -> None:
    """a's receipt names the review rule, so a chain without a's release to p1 (the rule
    and the approval stripped with it) is refused."""
    with pytest.raises(InvalidInput, match=f"no approved release of it to {P1}"):
        _verify(_chain())


def test_a_receipt_stripped_of_its_review_rules_fails_its_signature() -> None:
    """Removing the review rules from a's signed receipt breaks site2's signature."""
    data = _chain().to_metadata()
    a = next(r for r in data["receipts"] if r["result"] == str(A))
    del a["review_rules"]
    with pytest.raises(InvalidSignature, match="does not verify"):
        _verify(ReceiptChain.from_metadata(data))


def test_a_forged_rule_is_refused() -> None:
    """A review rule not signed by the owner of its namespace is refused."""
    forged = sign_rule(RULE.rule, PARTY_KEYS[P1]).to_dict()
    with pytest.raises(InvalidSignature):
        _verify(_chain(_entry(rules=(forged,))))


def test_a_chain_without_review_rules_verifies_as_before() -> None:
    """No review rule covered a: no release needed, and the chain's JSON has no releases."""
    chain = _chain(reviewed=False)
    assert "releases" not in chain.to_metadata()
    assert "review_rules" not in chain.to_metadata()["receipts"][0]
    assert len(_verify(chain)) == 2


def test_an_old_format_chain_verifies() -> None:
    """A record written before reviews were recorded (receipts only) still verifies."""
    old = {"receipts": _chain(reviewed=False).to_list()}
    trust = release_trust(lambda: PARTIES, OWNERS.get)
    lines = verify_result(
        B, DB, ReceiptChain.from_metadata(old), SiteSignatures(CERTS.get), trust, released=True
    )
    assert len(lines) == 2
