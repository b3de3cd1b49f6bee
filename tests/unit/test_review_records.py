"""A review of a result's release: its wire form, and the only ways it is decided."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest

from mahiru.errors import Conflict, InvalidInput
from mahiru.model.identifiers import JobId, PartyId, ResultId
from mahiru.model.reviews import CHECK_SHAPE, REVIEW_SHAPE, Review, ReviewState

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
OWNER = PartyId("p1.example.org", "p1")
RECEIVER = PartyId("p2.example.org", "p2")
PASSED = {"check": "size", "passed": True, "detail": "12 KiB, under 1 MiB"}
FAILED = {"check": "k-anonymity", "passed": False, "detail": "a group of 2 rows (k=5)"}


def review(*checks: dict[str, Any]) -> Review:
    """A pending review of releasing a result to RECEIVER, with these check outcomes."""
    return Review(
        review_id="3f2a9c",
        result=ResultId("ab" * 32),
        receiving_party=RECEIVER,
        rule_id="c0ffee" * 4,
        reviewer=str(OWNER),
        job_id=JobId("job-1"),
        digest="sha256:" + "cd" * 32,
        checks=checks,
        state=ReviewState.PENDING,
        requested_at=T0,
    )


def decide(r: Review, state: ReviewState, reason: str = "looked at it", **kw: Any) -> Review:
    return r.decide(
        state, at=T0 + timedelta(hours=1), by=f"alice@{OWNER}", party=OWNER, reason=reason, **kw
    )


def test_a_pending_review_reads_back_equal_from_its_wire_form_valid_under_its_schema() -> None:
    """to_dict -> valid under REVIEW_SHAPE's schema -> from_dict gives the review back."""
    pending = review(PASSED, FAILED)
    data = pending.to_dict()
    jsonschema_rs.validate(REVIEW_SHAPE.json_schema(), data)
    assert data["digest"] == "cd" * 32  # the `sha256:` prefix is dropped
    assert Review.from_dict(data) == pending


def test_a_decided_review_reads_back_equal_with_its_decision() -> None:
    """The decision's fields (time, person, party, reason, override) survive the round trip."""
    decided = decide(review(FAILED), ReviewState.APPROVED, override=True)
    data = decided.to_dict()
    jsonschema_rs.validate(REVIEW_SHAPE.json_schema(), data)
    assert data["decided_by"] == f"alice@{OWNER}" and data["override"] is True
    assert Review.from_dict(data) == decided


def test_both_shapes_are_valid_json_schemas_refusing_unknown_fields() -> None:
    for shape in (REVIEW_SHAPE, CHECK_SHAPE):
        schema = shape.json_schema()
        jsonschema_rs.meta.validate(schema)
        assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "colour"),
        ({"state": "maybe"}, "'state' must be one of pending, approved, rejected"),
        ({"result": "result:xyz"}, "'result'"),
        ({"reviewer": "site:p1.example.org:s1"}, "reviewer"),
        ({"checks": [{"check": "size", "passed": "yes", "detail": ""}]}, "'passed'"),
        ({"decided_by": "bob@" + str(OWNER)}, "pending review has no decision"),
    ],
)
def test_a_wrong_wire_form_is_refused_naming_what_is_wrong(
    change: dict[str, Any], message: str
) -> None:
    data = {**review(PASSED).to_dict(), **change}
    with pytest.raises(InvalidInput, match=message):
        Review.from_dict(data)


def test_approving_a_review_whose_checks_passed_records_who_decided_and_why() -> None:
    decided = decide(review(PASSED), ReviewState.APPROVED, reason="aggregate only")
    assert decided.state is ReviewState.APPROVED
    assert (decided.decided_by, decided.decided_by_party, decided.reason) == (
        f"alice@{OWNER}",
        OWNER,
        "aggregate only",
    )
    assert decided.decided_at == T0 + timedelta(hours=1) and not decided.override


def test_approving_over_a_failed_check_without_override_is_a_conflict_naming_the_check() -> None:
    with pytest.raises(Conflict, match="k-anonymity failed; approve with override") as error:
        decide(review(PASSED, FAILED), ReviewState.APPROVED)
    assert error.value.details["failed_checks"] == ["k-anonymity"]


def test_approving_over_a_failed_check_with_override_and_a_reason_releases_it() -> None:
    decided = decide(review(FAILED), ReviewState.APPROVED, reason="k=2 is public", override=True)
    assert decided.state is ReviewState.APPROVED and decided.override


def test_a_failed_check_may_be_rejected_without_override() -> None:
    assert decide(review(FAILED), ReviewState.REJECTED).state is ReviewState.REJECTED


@pytest.mark.parametrize(
    ("checks", "state", "message"),
    [
        ((PASSED,), ReviewState.APPROVED, "nothing to override"),
        ((FAILED,), ReviewState.REJECTED, "approving only"),
    ],
)
def test_an_override_where_no_failed_check_is_approved_is_refused(
    checks: tuple[dict[str, Any], ...], state: ReviewState, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        decide(review(*checks), state, override=True)


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_decision_without_a_reason_is_refused(reason: str) -> None:
    with pytest.raises(InvalidInput, match="give a reason"):
        decide(review(PASSED), ReviewState.REJECTED, reason=reason)


@pytest.mark.parametrize("first", [ReviewState.APPROVED, ReviewState.REJECTED])
def test_a_decided_review_is_not_decided_again_and_the_conflict_names_its_state(
    first: ReviewState,
) -> None:
    decided = decide(review(PASSED), first)
    with pytest.raises(Conflict, match=f"already {first.value} \\(by alice@") as error:
        decide(decided, ReviewState.REJECTED)
    assert error.value.details["state"] == first.value


def test_pending_is_no_decision() -> None:
    with pytest.raises(InvalidInput, match="approves or rejects"):
        decide(review(PASSED), ReviewState.PENDING)


def test_a_decided_review_must_name_its_decision_and_not_precede_its_request() -> None:
    decided = decide(review(PASSED), ReviewState.APPROVED)
    with pytest.raises(InvalidInput, match="names when, by whom"):
        replace(decided, reason=None)
    with pytest.raises(InvalidInput, match="decided before it was requested"):
        replace(decided, decided_at=T0 - timedelta(seconds=1))
    with pytest.raises(InvalidInput, match="without override"):
        replace(decide(review(FAILED), ReviewState.REJECTED), state=ReviewState.APPROVED)
