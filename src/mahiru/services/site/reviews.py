"""The review queue of a site: releases a ReleaseReviewedBy rule holds back until a
reviewer decides.

The release path asks for a review (`ReviewQueue.request`, once per result, receiving
party and rule); reviewers list the queue and approve or reject. Who may decide is a
policy question: the queue asks the `MayReview` it was given and never answers it
itself. A person sees (`visible_to`, `find_for`) and decides only as a reviewer or admin
(`Person.reviews`), and sees only the reviews whose reviewer their party answers for
(`ReviewerNames`): the others are answered as if they did not exist.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from mahiru.clock import Clock, IdSource, random_id
from mahiru.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mahiru.model.approvals import ApprovalStatement, SignedApproval
from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId
from mahiru.model.people import Person
from mahiru.model.rejections import RejectionStatement, SignedRejection
from mahiru.model.reviews import Review, ReviewState
from mahiru.policy.decisions import Decision
from mahiru.storage import ReviewRepository

#: Whether `party` may decide reviews that the rule with this id asks for, and why.
MayReview = Callable[[PartyId, str], Decision]
#: The reviewer names (party and party category ids) a party answers for.
ReviewerNames = Callable[[PartyId], Collection[str]]


def party_only(party: PartyId) -> Collection[str]:
    """A party answers for itself alone: what a queue uses without the policy's answer."""
    return (str(party),)


def nobody_reviews(party: PartyId, rule_id: str) -> Decision:
    """Nobody may decide: what a site answers until its policy engine says who may.

    A question the rules cannot answer grants nothing, so a held-back result stays held
    back rather than being released by a party nobody named.
    """
    return Decision(
        False,
        str(party),
        "review",
        f"releases under rule {rule_id}",
        note="this site's policy does not yet say who may review releases",
    )


@dataclass(frozen=True, slots=True)
class ApprovalSigner:
    """Signs the decision on a review as `site`, with its TLS key (`sign`): an approval,
    with the rule in its dict form as `rule_of` gives it by id, or a rejection."""

    site: SiteId
    rule_of: Callable[[str], Mapping[str, Any] | None]
    sign: Callable[[bytes], bytes]

    def __call__(self, review: Review) -> SignedApproval | SignedRejection:
        """The signed statement of the decided `review`; approving, NotFound if its rule
        is not in force (nobody may approve under it then)."""
        if review.state is ReviewState.REJECTED:
            rejection = RejectionStatement.of_review(review, self.site)
            return SignedRejection(rejection, self.sign(rejection.canonical_bytes()))
        rule = self.rule_of(review.rule_id)
        if rule is None:
            raise NotFound(
                f"rule {review.rule_id} is not in force here", {"rule_id": review.rule_id}
            )
        statement = ApprovalStatement.of_review(review, self.site, rule)
        return SignedApproval(statement, self.sign(statement.canonical_bytes()))


class ReviewQueue:
    """Reviews of results' release asked for at this site, listed and decided.

    Times come from `clock` and new review ids from `new_id`; whether a party may
    decide is `may_review`'s answer, and which reviews a party's people see is
    `reviewer_names`'.
    """

    def __init__(
        self,
        reviews: ReviewRepository,
        may_review: MayReview,
        *,
        clock: Clock,
        new_id: IdSource = random_id,
        reviewer_names: ReviewerNames = party_only,
        signer: ApprovalSigner | None = None,
    ) -> None:
        self._reviews = reviews
        #: Signs each approval into the record; None: a site without a key signs none.
        self._signer = signer
        self._may_review = may_review
        self._reviewer_names = reviewer_names
        self._clock = clock
        self._new_id = new_id
        self._notify: Callable[[], None] = lambda: None

    def use_notifier(self, notify: Callable[[], None]) -> None:
        """Call `notify` after each review asked for, mirrored or decided here (the
        review exchange wakes to offer or report it)."""
        self._notify = notify

    def request(
        self,
        result: ResultId,
        receiving_party: PartyId,
        rule_id: str,
        reviewer: str,
        job_id: JobId,
        digest: str,
        checks: Iterable[Mapping[str, Any]],
    ) -> Review:
        """The review of releasing `result` to `receiving_party` under rule `rule_id`:
        a new pending one, or the one asked for before, whatever its state (a rejected
        release stays rejected).

        Asking twice, also at once, gives one review.
        """
        existing = self._reviews.for_release(result, receiving_party, rule_id)
        if existing is not None:
            return existing
        review = Review(
            review_id=self._new_id(),
            result=result,
            receiving_party=receiving_party,
            rule_id=rule_id,
            reviewer=reviewer,
            job_id=job_id,
            digest=digest,
            checks=tuple(checks),
            state=ReviewState.PENDING,
            requested_at=self._clock.now(),
        )
        stored = self._reviews.add(review)
        self._notify()
        return stored

    def mirror(self, review: Review, holder: SiteId) -> Review:
        """Keep the pending `review`, offered by `holder`, the site that holds its result,
        for this site's reviewers to decide (`Review.held_at` names `holder`); offering
        it again gives the one kept.

        InvalidInput for a decided review; Conflict if its id or release is another
        site's review here.
        """
        if review.state.decided or review.held_at is not None:
            raise InvalidInput(
                f"review {review.review_id} is offered {review.state.value}, or as held"
                " elsewhere: only a pending review held at the offering site is kept",
                {"review_id": review.review_id},
            )
        stored = self._reviews.add(replace(review, held_at=holder))
        if stored.review_id != review.review_id or stored.held_at != holder:
            raise Conflict(
                f"review {review.review_id} is not the review kept here for that release",
                {"review_id": review.review_id},
            )
        return stored

    def record_reported(
        self,
        decided: Review,
        party: PartyId,
        signed: SignedApproval | SignedRejection,
        *,
        site: SiteId,
    ) -> Review:
        """Record the decision `decided` that `site`, a site of `party`, reported on a
        review held here (checked by the caller against the review and its signature), with
        its `signed` statement, in the audit log naming the person, `party` and `site`.

        PermissionDenied (with the policy's explanation) unless `party` may review under
        the review's rule; Conflict if the review is decided already (the first decision
        reported, from whichever site, is the one kept).
        """
        decision = self._may_review(party, decided.rule_id)
        if not decision.allowed:
            raise PermissionDenied(
                "; ".join(decision.failures()) or decision.headline(), decision.to_dict()
            )
        assert decided.decided_at is not None and decided.decided_by is not None
        assert decided.reason is not None  # a decided review names all three
        recorded = self._reviews.decide(
            decided.review_id,
            decided.state,
            at=decided.decided_at,
            by=decided.decided_by,
            party=party,
            reason=decided.reason,
            override=decided.override,
            signed=lambda _: signed,
            site=site,
        )
        self._notify()
        return recorded

    def for_release(
        self, result: ResultId, receiving_party: PartyId, rule_id: str
    ) -> Review | None:
        """The review of releasing `result` to `receiving_party` under rule `rule_id`, if
        one was asked for (`ReviewRepository.for_release`); asks for none."""
        return self._reviews.for_release(result, receiving_party, rule_id)

    def rejection(self, result: ResultId, receiving_party: PartyId) -> Review | None:
        """The rejected review of releasing `result` to `receiving_party` under any rule,
        in force or not: a rejection is final (`ReviewRepository.rejection`)."""
        return self._reviews.rejection(result, receiving_party)

    def approval(self, review: Review) -> SignedApproval | None:
        """The signed approval of `review`, if it is approved and one was signed."""
        if review.state is not ReviewState.APPROVED:
            return None
        return self._reviews.approval(review.review_id)

    def signed_decision(self, review: Review) -> SignedApproval | SignedRejection | None:
        """The signed statement of the decision on `review`, if it is decided and one was
        signed: an approval or a rejection."""
        if not review.state.decided:
            return None
        return self._reviews.signed_decision(review.review_id)

    def pending(self, *, offset: int = 0, limit: int = 50) -> tuple[list[Review], int]:
        """One page of the reviews waiting for a decision, newest first, and how many
        wait in all."""
        return self._reviews.list_reviews(ReviewState.PENDING, offset=offset, limit=limit)

    def list(
        self, state: ReviewState | None = None, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[Review], int]:
        """One page of the reviews (in `state`, if given), newest first, and how many
        there are in all."""
        return self._reviews.list_reviews(state, offset=offset, limit=limit)

    def get(self, id_or_prefix: str) -> Review:
        """The review with this id or unique id prefix (`ReviewRepository.find`)."""
        return self._reviews.find(id_or_prefix)

    def visible_to(
        self, person: Person, state: ReviewState | None = None, *, offset: int = 0, limit: int = 50
    ) -> tuple[builtins.list[Review], int]:
        """One page of the reviews `person` may see (in `state`, if given), newest first,
        and how many there are in all: those their party answers for as reviewer.

        PermissionDenied unless `person` is a reviewer or an admin.
        """
        names = self._names(person)
        return self._reviews.list_reviews(state, reviewers=names, offset=offset, limit=limit)

    def find_for(self, person: Person, id_or_prefix: str) -> Review:
        """The review with this id or unique id prefix among those `person` may see.

        NotFound alike for a review that does not exist and for one another party is
        to review; PermissionDenied unless `person` is a reviewer or an admin.
        """
        names = self._names(person)
        try:
            return self._reviews.find(id_or_prefix, reviewers=names)
        except NotFound:
            raise NotFound(
                f"no review {id_or_prefix} for {person.party} to decide at this site",
                {"review_id": id_or_prefix},
            ) from None

    def _names(self, person: Person) -> Collection[str]:
        _check_role(person)
        return self._reviewer_names(person.party)

    def approve(
        self, review_id: str, person: Person, party: PartyId, reason: str, *, override: bool = False
    ) -> Review:
        """Release the result: `person` approves review `review_id` for `party`, because
        of `reason`; with `override`, although a check failed.

        PermissionDenied (with the policy's explanation) unless `party` may review
        under the review's rule and `person` speaks for `party`; Conflict if it is
        decided already or a check failed without `override`.
        """
        return self._decide(review_id, ReviewState.APPROVED, person, party, reason, override)

    def reject(self, review_id: str, person: Person, party: PartyId, reason: str) -> Review:
        """Hold the result back for good: `person` rejects review `review_id` for
        `party`, because of `reason` (errors as `approve`)."""
        return self._decide(review_id, ReviewState.REJECTED, person, party, reason, False)

    def _decide(
        self,
        review_id: str,
        state: ReviewState,
        person: Person,
        party: PartyId,
        reason: str,
        override: bool,
    ) -> Review:
        review = self._reviews.find(review_id)
        _check_role(person)
        if person.party != party:
            raise PermissionDenied(
                f"{person} may decide reviews for their own party {person.party} only,"
                f" not for {party}",
                {"user": str(person), "party": str(party)},
            )
        decision = self._may_review(party, review.rule_id)
        if not decision.allowed:
            raise PermissionDenied(
                "; ".join(decision.failures()) or decision.headline(), decision.to_dict()
            )
        decided = self._reviews.decide(
            review.review_id,
            state,
            at=self._clock.now(),
            by=str(person),
            party=party,
            reason=reason,
            override=override,
            signed=self._signer,
        )
        self._notify()
        return decided


def _check_role(person: Person) -> None:
    """PermissionDenied unless `person` is a reviewer or an admin."""
    if not person.reviews:
        raise PermissionDenied(
            f"{person} may not see or decide reviews: that takes the reviewer (or admin)"
            " role in their certificate",
            {"user": str(person)},
        )
