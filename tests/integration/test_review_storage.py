"""Reviews of results' release in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.support.db import OpenDb

from mahiru.errors import Conflict, InvalidInput, NotFound
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import JobId, PartyId, ResultId
from mahiru.model.reviews import Review, ReviewState
from mahiru.storage import AuditLog, AuditQuery, Database, ReviewRepository
from mahiru.storage.reviews import pending_review_count, review_latencies

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
OWNER = PartyId("p1.example.org", "p1")
RECEIVER = PartyId("p2.example.org", "p2")
OTHER = PartyId("p3.example.org", "p3")
RESULT = ResultId("ab" * 32)
RULE = "c0ffee" * 4
PASSED = {"check": "size", "passed": True, "detail": "small"}
FAILED = {"check": "k-anonymity", "passed": False, "detail": "k=2"}
ALICE = f"alice@{OWNER}"


def review(
    review_id: str,
    minutes: int = 0,
    *,
    result: ResultId = RESULT,
    party: PartyId = RECEIVER,
    rule: str = RULE,
    checks: tuple[dict[str, Any], ...] = (PASSED,),
) -> Review:
    return Review(
        review_id,
        result,
        party,
        rule,
        str(OWNER),
        JobId("job-1"),
        "cd" * 32,
        checks,
        ReviewState.PENDING,
        T0 + timedelta(minutes=minutes),
    )


@pytest.fixture
def database(open_db: OpenDb) -> Database:
    return open_db()


@pytest.fixture
def audit(database: Database) -> AuditLog:
    return AuditLog(database)


@pytest.fixture
def repo(database: Database, audit: AuditLog) -> ReviewRepository:
    """A review repository writing to `audit`, on a freshly migrated database."""
    return ReviewRepository(database, audit=audit)


def test_a_review_added_reads_back_equal_and_its_request_is_audited(
    repo: ReviewRepository, audit: AuditLog
) -> None:
    added = repo.add(review("3f2a0001", checks=(PASSED, FAILED)))
    assert repo.get("3f2a0001") == added
    (record,) = audit.page(AuditQuery(kind=AuditKind.REVIEW)).records
    entry = record.entry
    assert (entry.action, entry.outcome, entry.party, entry.asset, entry.job) == (
        "request",
        "pending",
        str(RECEIVER),
        str(RESULT),
        "job-1",
    )
    assert entry.details["failed_checks"] == ["k-anonymity"]


def test_adding_a_second_review_of_the_same_release_returns_the_first(
    repo: ReviewRepository, audit: AuditLog
) -> None:
    """One review per (result, receiving party, rule): the second is not stored or audited."""
    first = repo.add(review("3f2a0001"))
    assert repo.add(review("3f2a0002", minutes=5)) == first
    assert repo.list_reviews() == ([first], 1)
    assert len(audit.page(AuditQuery(kind=AuditKind.REVIEW)).records) == 1


def test_reviews_of_two_releases_added_at_once_are_both_stored_once(
    repo: ReviewRepository,
) -> None:
    """Concurrent adds of the same release keep one review; each caller gets that one."""
    got: list[Review] = []
    errors: list[BaseException] = []

    def add(review_id: str) -> None:
        try:
            got.append(repo.add(review(review_id)))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=add, args=(f"3f2a000{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({r.review_id for r in got}) == 1 and repo.list_reviews()[1] == 1


def test_an_id_taken_by_another_release_is_a_conflict(repo: ReviewRepository) -> None:
    repo.add(review("3f2a0001"))
    with pytest.raises(Conflict, match="taken by another release"):
        repo.add(review("3f2a0001", party=OTHER))


def test_an_unknown_review_is_not_known(repo: ReviewRepository) -> None:
    with pytest.raises(NotFound, match="review 3f2a0001 is not known here"):
        repo.get("3f2a0001")


def test_a_review_is_found_by_its_id_or_a_unique_prefix(repo: ReviewRepository) -> None:
    repo.add(review("3f2a0001"))
    repo.add(review("77aa0002", party=OTHER))
    assert repo.find("3f2a0001").review_id == "3f2a0001"
    assert repo.find("3f2a").review_id == "3f2a0001"
    assert repo.find("77aa00").review_id == "77aa0002"


def test_an_ambiguous_short_or_unmatched_prefix_is_refused(repo: ReviewRepository) -> None:
    repo.add(review("3f2a0001"))
    repo.add(review("3f2a0002", party=OTHER))
    with pytest.raises(InvalidInput, match="starts 2 review ids") as error:
        repo.find("3f2a")
    assert error.value.details == {"matches": ["3f2a0001", "3f2a0002"]}
    with pytest.raises(InvalidInput, match="too short"):
        repo.find("3f2")
    with pytest.raises(NotFound, match="no review id here starts with '9999'"):
        repo.find("9999")
    with pytest.raises(InvalidInput, match="not a review id"):
        repo.find("3f2a%")


def test_a_prefix_s_underscore_matches_itself_only(repo: ReviewRepository) -> None:
    """The prefix is no LIKE pattern: `_` is a character of the id, not any character."""
    repo.add(review("ab_c0001"))
    repo.add(review("abxc0002", party=OTHER))
    assert repo.find("ab_c").review_id == "ab_c0001"


def test_reviews_are_listed_newest_first_by_state_in_pages(
    repo: ReviewRepository, database: Database
) -> None:
    for i in range(5):
        repo.add(review(f"3f2a000{i}", minutes=i, party=PartyId("p.example.org", f"p{i}")))
    later = T0 + timedelta(hours=1)
    repo.decide("3f2a0001", ReviewState.REJECTED, at=later, by=ALICE, party=OWNER, reason="no")
    reviews, total = repo.list_reviews()
    assert [r.review_id for r in reviews] == [f"3f2a000{i}" for i in (4, 3, 2, 1, 0)]
    assert total == 5
    pending, total = repo.list_reviews(ReviewState.PENDING, offset=1, limit=2)
    assert [r.review_id for r in pending] == ["3f2a0003", "3f2a0002"] and total == 4
    rejected, total = repo.list_reviews(ReviewState.REJECTED)
    assert [r.review_id for r in rejected] == ["3f2a0001"] and total == 1
    assert pending_review_count(database) == 4


def test_for_release_finds_the_review_of_that_result_party_and_rule_only(
    repo: ReviewRepository,
) -> None:
    added = repo.add(review("3f2a0001"))
    repo.add(review("3f2a0002", party=OTHER))
    repo.add(review("3f2a0003", rule="another-rule"))
    assert repo.for_release(RESULT, RECEIVER, RULE) == added
    assert repo.for_release(ResultId("ef" * 32), RECEIVER, RULE) is None
    assert repo.for_release(RESULT, PartyId("p.example.org", "p9"), RULE) is None


def test_a_decision_is_stored_and_audited_naming_the_person_and_party(
    repo: ReviewRepository, audit: AuditLog, database: Database
) -> None:
    repo.add(review("3f2a0001", checks=(FAILED,)))
    decided = repo.decide(
        "3f2a0001",
        ReviewState.APPROVED,
        at=T0 + timedelta(minutes=30),
        by=ALICE,
        party=OWNER,
        reason="k=2 is fine for counts",
        override=True,
    )
    assert repo.get("3f2a0001") == decided
    assert repo.for_release(RESULT, RECEIVER, RULE) == decided
    record = audit.page(AuditQuery(kind=AuditKind.REVIEW)).records[0]
    entry = record.entry
    assert (entry.action, entry.outcome, entry.user, entry.actor, entry.party) == (
        "decide",
        "approved",
        ALICE,
        str(OWNER),
        str(RECEIVER),
    )
    assert entry.details["reason"] == "k=2 is fine for counts" and entry.details["override"]
    assert audit.page(AuditQuery(person=ALICE)).records == [record]
    assert audit.verify().intact
    assert review_latencies(database) == [1800.0]


def test_a_refused_decision_changes_nothing_and_records_nothing(
    repo: ReviewRepository, audit: AuditLog
) -> None:
    pending = repo.add(review("3f2a0001", checks=(FAILED,)))
    with pytest.raises(Conflict, match="override"):
        repo.decide("3f2a0001", ReviewState.APPROVED, at=T0, by=ALICE, party=OWNER, reason="ok")
    assert repo.get("3f2a0001") == pending
    assert [r.entry.action for r in audit.page(AuditQuery(kind=AuditKind.REVIEW)).records] == [
        "request"
    ]


def test_a_decided_review_is_not_decided_again(repo: ReviewRepository) -> None:
    repo.add(review("3f2a0001"))
    repo.decide("3f2a0001", ReviewState.REJECTED, at=T0, by=ALICE, party=OWNER, reason="no")
    with pytest.raises(Conflict, match="already rejected"):
        repo.decide("3f2a0001", ReviewState.APPROVED, at=T0, by=ALICE, party=OWNER, reason="ok")
    with pytest.raises(NotFound):
        repo.decide("3f2a0009", ReviewState.APPROVED, at=T0, by=ALICE, party=OWNER, reason="ok")


def test_only_a_pending_review_is_added(repo: ReviewRepository) -> None:
    decided = replace(
        review("3f2a0001"),
        state=ReviewState.REJECTED,
        decided_at=T0,
        decided_by=ALICE,
        decided_by_party=OWNER,
        reason="no",
    )
    with pytest.raises(Conflict, match="only a pending review"):
        repo.add(decided)
