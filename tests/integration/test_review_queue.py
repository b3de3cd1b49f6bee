"""The review queue: one review per release, decided once, by a party the policy names."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.support.db import OpenDb
from tests.support.manual_clock import ManualClock

from mahiru.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import JobId, PartyId, ResultId
from mahiru.model.people import Person
from mahiru.model.reviews import Review, ReviewState
from mahiru.policy.decisions import Decision
from mahiru.services.site import ReviewQueue, nobody_reviews
from mahiru.storage import AuditLog, AuditQuery, Database, ReviewRepository

pytestmark = pytest.mark.integration

OWNER = PartyId("p1.example.org", "p1")
RECEIVER = PartyId("p2.example.org", "p2")
STRANGER = PartyId("p3.example.org", "p3")
RESULT = ResultId("ab" * 32)
RULE = "c0ffee" * 4
ALICE = Person("alice", OWNER, reviewer=True)
MALLORY = Person("mallory", STRANGER, reviewer=True)
PASSED = {"check": "size", "passed": True, "detail": "small"}
FAILED = {"check": "k-anonymity", "passed": False, "detail": "k=2"}


def owner_reviews(party: PartyId, rule_id: str) -> Decision:
    """The test's policy: the owner may review under RULE, nobody else under anything."""
    allowed = party == OWNER and rule_id == RULE
    return Decision(allowed, str(party), "review", f"releases under rule {rule_id}", note="test")


class Ids:
    """Review ids 3f2a0001, 3f2a0002, ... in order."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"3f2a{self.count:04d}"


class Setting:
    """A queue on a fresh database, with its clock, repository and audit log."""

    def __init__(self, database: Database) -> None:
        self.clock = ManualClock()
        self.audit = AuditLog(database, clock=self.clock)
        self.repository = ReviewRepository(database, audit=self.audit)
        self.queue = ReviewQueue(self.repository, owner_reviews, clock=self.clock, new_id=Ids())

    def request(self, *checks: dict[str, Any], party: PartyId = RECEIVER) -> Review:
        return self.queue.request(
            RESULT, party, RULE, str(OWNER), JobId("job-1"), "cd" * 32, checks or (PASSED,)
        )

    def review_records(self) -> list[tuple[str, str, str | None]]:
        records = self.audit.page(AuditQuery(kind=AuditKind.REVIEW)).records
        return [(r.entry.action, r.entry.outcome, r.entry.user) for r in reversed(records)]


@pytest.fixture
def setting(open_db: OpenDb) -> Setting:
    return Setting(open_db())


def test_a_request_makes_a_pending_review_at_the_clock_s_time_with_a_new_id(
    setting: Setting,
) -> None:
    review = setting.request(PASSED, FAILED)
    assert review.review_id == "3f2a0001" and review.state is ReviewState.PENDING
    assert review.requested_at == setting.clock.now()
    assert review.failed_checks == ["k-anonymity"]
    assert setting.queue.get("3f2a0001") == review
    assert setting.queue.pending() == ([review], 1)


def test_asking_again_for_the_same_release_returns_the_pending_review(setting: Setting) -> None:
    first = setting.request()
    setting.clock.sleep(60)
    assert setting.request() == first
    assert setting.queue.list() == ([first], 1)
    assert setting.review_records() == [("request", "pending", None)]


@pytest.mark.parametrize("state", [ReviewState.APPROVED, ReviewState.REJECTED])
def test_asking_again_after_a_decision_returns_the_decided_review(
    setting: Setting, state: ReviewState
) -> None:
    """An approved release stays approved, and a rejected one stays rejected: no new review."""
    review = setting.request()
    if state is ReviewState.APPROVED:
        decided = setting.queue.approve(review.review_id, ALICE, OWNER, "aggregates only")
    else:
        decided = setting.queue.reject(review.review_id, ALICE, OWNER, "names in column 3")
    assert setting.request() == decided and decided.state is state
    assert setting.queue.list()[1] == 1


def test_another_receiving_party_gets_a_review_of_its_own(setting: Setting) -> None:
    first = setting.request()
    other = setting.request(party=STRANGER)
    assert other.review_id != first.review_id
    assert setting.queue.pending()[1] == 2


def test_approving_records_the_person_the_party_the_time_and_the_reason(
    setting: Setting,
) -> None:
    review = setting.request()
    setting.clock.sleep(3600)
    approved = setting.queue.approve("3f2a", ALICE, OWNER, "aggregates only")  # a prefix
    assert approved.state is ReviewState.APPROVED
    assert (approved.decided_by, approved.decided_by_party, approved.reason) == (
        str(ALICE),
        OWNER,
        "aggregates only",
    )
    assert approved.decided_at == review.requested_at + timedelta(hours=1)
    assert setting.queue.pending() == ([], 0)
    assert setting.queue.list(ReviewState.APPROVED) == ([approved], 1)
    assert setting.review_records() == [
        ("request", "pending", None),
        ("decide", "approved", str(ALICE)),
    ]


def test_rejecting_keeps_the_result_back_with_the_reason(setting: Setting) -> None:
    review = setting.request(FAILED)
    rejected = setting.queue.reject(review.review_id, ALICE, OWNER, "k=2 identifies people")
    assert rejected.state is ReviewState.REJECTED and rejected.reason == "k=2 identifies people"
    assert setting.queue.get(review.review_id) == rejected


def test_a_failed_check_is_approved_only_with_override_and_a_reason(setting: Setting) -> None:
    review = setting.request(PASSED, FAILED)
    with pytest.raises(Conflict, match="k-anonymity failed"):
        setting.queue.approve(review.review_id, ALICE, OWNER, "looks fine")
    with pytest.raises(InvalidInput, match="give a reason"):
        setting.queue.approve(review.review_id, ALICE, OWNER, " ", override=True)
    assert setting.queue.get(review.review_id).state is ReviewState.PENDING
    approved = setting.queue.approve(review.review_id, ALICE, OWNER, "public counts", override=True)
    assert approved.override and approved.state is ReviewState.APPROVED


def test_a_decided_review_is_not_decided_again(setting: Setting) -> None:
    review = setting.request()
    setting.queue.reject(review.review_id, ALICE, OWNER, "no")
    with pytest.raises(Conflict, match="already rejected"):
        setting.queue.approve(review.review_id, ALICE, OWNER, "yes after all")


def test_a_party_the_policy_does_not_name_is_refused_with_its_explanation(
    setting: Setting,
) -> None:
    """The queue asks `may_review` and passes its denial on; the review stays pending."""
    review = setting.request()
    with pytest.raises(PermissionDenied, match="may not review releases under rule") as error:
        setting.queue.approve(review.review_id, MALLORY, STRANGER, "let me have it")
    assert error.value.details["subject"] == str(STRANGER)
    assert setting.queue.get(review.review_id).state is ReviewState.PENDING
    assert setting.review_records() == [("request", "pending", None)]


def test_a_person_decides_for_their_own_party_only(setting: Setting) -> None:
    review = setting.request()
    with pytest.raises(PermissionDenied, match="for their own party"):
        setting.queue.approve(review.review_id, MALLORY, OWNER, "on the owner's behalf")
    assert setting.queue.get(review.review_id).state is ReviewState.PENDING


def test_until_the_policy_says_who_may_review_nobody_may(open_db: OpenDb) -> None:
    """`nobody_reviews`, what a built site uses for now, refuses every party."""
    database = open_db()
    queue = ReviewQueue(ReviewRepository(database), nobody_reviews, clock=ManualClock())
    review = queue.request(RESULT, RECEIVER, RULE, str(OWNER), JobId("job-1"), "cd" * 32, ())
    with pytest.raises(PermissionDenied, match="does not yet say who may review"):
        queue.approve(review.review_id, ALICE, OWNER, "mine")


def test_only_reviewers_and_admins_see_or_decide_reviews(setting: Setting) -> None:
    """A plain user of the reviewing party is refused, naming the role it takes."""
    review = setting.request()
    plain = Person("bob", OWNER)
    for attempt in (
        lambda: setting.queue.visible_to(plain),
        lambda: setting.queue.find_for(plain, review.review_id),
        lambda: setting.queue.approve(review.review_id, plain, OWNER, "mine"),
    ):
        with pytest.raises(PermissionDenied, match="reviewer \\(or admin\\) role"):
            attempt()
    admin = Person("root", OWNER, admin=True)
    assert setting.queue.visible_to(admin) == ([review], 1)
    assert setting.queue.get(review.review_id).state is ReviewState.PENDING


def test_a_person_sees_only_the_reviews_their_party_answers_for(open_db: OpenDb) -> None:
    """Reviews naming another party are as if they did not exist: not listed, not found by
    id or prefix (the same answer as for a missing id), and no prefix is ambiguous for them."""
    clock = ManualClock()
    names = {OWNER: {str(OWNER), "party_category:p1.example.org:boards"}, STRANGER: {str(STRANGER)}}
    queue = ReviewQueue(
        ReviewRepository(open_db()),
        owner_reviews,
        clock=clock,
        new_id=Ids(),
        reviewer_names=names.__getitem__,
    )
    job, digest = JobId("job-1"), "cd" * 32
    own = queue.request(RESULT, RECEIVER, RULE, str(OWNER), job, digest, ())
    clock.sleep(1)
    board = queue.request(
        RESULT, RECEIVER, "r2", "party_category:p1.example.org:boards", job, digest, ()
    )
    foreign = queue.request(RESULT, RECEIVER, "r3", str(STRANGER), job, digest, ())
    assert queue.visible_to(ALICE) == ([board, own], 2)
    assert queue.visible_to(MALLORY) == ([foreign], 1)
    assert queue.visible_to(MALLORY, ReviewState.APPROVED) == ([], 0)
    assert queue.find_for(MALLORY, "3f2a") == foreign  # unique among what Mallory sees
    for missing in (own.review_id, "3f2a9999"):
        with pytest.raises(NotFound) as error:
            queue.find_for(MALLORY, missing)
        assert error.value.message == f"no review {missing} for {STRANGER} to decide at this site"
