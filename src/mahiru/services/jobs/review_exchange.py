"""Reviews whose reviewer is another party: offered to the sites of that party, decided
there, and the decision reported back, signed, to the site that holds the result.

The holding site offers each pending review whose reviewer is not its owner to every
site of every party the reviewer names: the reviewer party, or each party in the
reviewer category (as this site's policy says, through `ReviewerNames`), its own party
left out. Each of those sites keeps a mirror (`Review.held_at`) that its reviewers list,
read and decide like any review; the files come from the holder's egress gate. A
decision taken there is signed (an approval or a rejection, with that site's key) and reported back;
the holder checks the reporting site is of the deciding party, that party may review,
the report matches its review and the approval verifies, and records the first decision
reported as a decision of that party, naming the reporting site; a later one is a
Conflict. Offers and reports not delivered are kept (`storage.review_outbox`) and tried
again by the exchange's loop, backing off while they fail; a report the holder refuses
as conflicting is given up after `CONFLICTING_REPORTS` tries, with an audit record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial

from mahiru.clock import Clock
from mahiru.errors import Conflict, InvalidInput, NotFound, NotKnown, PermissionDenied
from mahiru.model.approvals import ApprovalStatement
from mahiru.model.audit import AuditEntry, AuditKind
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.people import Person
from mahiru.model.registry import SiteRecord
from mahiru.model.rejections import RejectionStatement
from mahiru.model.review_exchange import SignedDecision
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki.signatures import SiteSignatures
from mahiru.retry import Backoff
from mahiru.services.background import BackgroundLoop, Unexpected, guarded
from mahiru.services.jobs.egress import Egress
from mahiru.services.jobs.peers import JobPeers
from mahiru.services.site.review_files import ReviewFiles
from mahiru.services.site.reviews import ReviewerNames, ReviewQueue
from mahiru.storage import AuditLog, ReplicaRepository
from mahiru.storage.review_outbox import ReviewOutbox

logger = logging.getLogger("mahiru.site.reviews")

#: Seconds between rounds while nothing is owed (a review asked for or decided wakes it).
EXCHANGE_INTERVAL = 30.0
#: The pauses between rounds while an offer or report is not delivered.
EXCHANGE_BACKOFF = Backoff(1.0, cap=60.0)
#: How often a decision is reported that the holding site refuses as conflicting with the
#: one it holds (another site of the reviewer decided first) before giving up on it.
CONFLICTING_REPORTS = 3


@dataclass(frozen=True, slots=True)
class ReviewReading:
    """How the files of a result held here are read for a reviewer: through the egress
    gate, out of the stored image."""

    egress: Egress
    files: ReviewFiles


@dataclass(frozen=True, slots=True)
class ReviewerParties:
    """Who the reviewer a review names is, as this site's policy says: the reviewer names
    (party and categories) each party answers for, and the audit log recording what the
    exchange gives up on."""

    names_of: ReviewerNames
    audit: AuditLog


class ReviewExchange:
    """Offers, mirrors and reports reviews between this site and other parties' sites."""

    def __init__(
        self,
        owner: PartyId,
        queue: ReviewQueue,
        outbox: ReviewOutbox,
        peers: JobPeers,
        replica: ReplicaRepository,
        reading: ReviewReading,
        reviewers: ReviewerParties,
        clock: Clock,
    ) -> None:
        self._owner = owner
        self._reviewers = reviewers
        #: Per review being offered, the sites it reached so far (in memory: after a
        #: restart it is offered again to all of them, which keep the one they have).
        self._reached: dict[str, set[SiteId]] = {}
        #: Per mirrored review, how often the holder refused its decision as conflicting.
        self._conflicts: dict[str, int] = {}
        self._queue = queue
        self._outbox = outbox
        self._peers = peers
        self._replica = replica
        self._reading = reading
        self._clock = clock
        self._failed_rounds = 0
        self.loop = BackgroundLoop(
            "mahiru-review-exchange", self.round, EXCHANGE_INTERVAL, logger=logger
        )

    def start(self) -> None:
        """Start offering and reporting in the background."""
        self.loop.start()

    def wake(self) -> None:
        """Look for something to offer or report now."""
        self.loop.wake()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current round."""
        self.loop.stop(timeout)

    # --- sending ---------------------------------------------------------------------

    def round(self) -> float | None:
        """Offer each review owed to other parties' sites and report each decision owed
        to the site holding its result; the pause before trying again if one failed."""
        failed = 0
        offers = self._outbox.to_offer(self._owner)
        # Forget the sites reached by reviews no longer to offer (decided meanwhile).
        owed = {review.review_id for review in offers}
        self._reached = {r: sites for r, sites in self._reached.items() if r in owed}
        for review in offers:
            failed += self._offer(review)
        for review in self._outbox.to_report():
            failed += self._delivered(f"report review {review.review_id}", self._report, review)
        if not failed:
            self._failed_rounds = 0
            return None
        self._failed_rounds += 1
        return EXCHANGE_BACKOFF.delay(self._failed_rounds)

    def _delivered(self, what: str, send: Callable[[Review], None], review: Review) -> int:
        """Send one; 1 if it failed (logged, kept to try again), 0 if it went."""
        outcome = guarded(lambda: send(review))
        if not isinstance(outcome, Unexpected):
            return 0
        logger.info(
            "review exchange failed; trying again later",
            extra={"action": what, "error": outcome.describe()},
        )
        return 1

    def _offer(self, review: Review) -> int:
        """Offer `review` to each site of the reviewer not reached yet; once all are, it
        is noted offered. How many could not be reached."""
        sites = self.reviewer_sites(review.reviewer)
        if not sites:  # nobody to offer it to (yet): not a failure to back off from
            logger.debug("review has no site to be offered to", extra={"review": review.review_id})
            return 0
        reached = self._reached.setdefault(review.review_id, set())
        failed = 0
        for site in sites:
            if site in reached:
                continue
            if self._delivered(
                f"offer review {review.review_id} to {site}",
                partial(self._offer_to, site),
                review,
            ):
                failed += 1
            else:
                reached.add(site)
                logger.info("review offered", extra={"review": review.review_id, "site": str(site)})
        if reached.issuperset(sites):
            self._outbox.offered(review.review_id, reached)
            del self._reached[review.review_id]
        return failed

    def _offer_to(self, site: SiteId, review: Review) -> None:
        self._peers.get(site).offer_review(review)

    def offered_to(self, review_id: str) -> tuple[SiteId, ...]:
        """The sites review `review_id`, held here, was offered to; none until it reached
        every site it is to go to."""
        return self._outbox.offered_to(review_id)

    def _report(self, review: Review) -> None:
        assert review.held_at is not None  # only mirrors are reported
        try:
            signed = self._queue.signed_decision(review)
            self._peers.get(review.held_at).report_review(review, signed)
        except Conflict as conflict:
            tries = self._conflicts.get(review.review_id, 0) + 1
            self._conflicts[review.review_id] = tries
            if tries < CONFLICTING_REPORTS:
                raise
            self._give_up(review, conflict, tries)
            return
        self._conflicts.pop(review.review_id, None)
        self._outbox.reported(review.review_id, self._clock.now())
        logger.info("review decision reported", extra={"review": review.review_id})

    def _give_up(self, review: Review, conflict: Conflict, tries: int) -> None:
        """Stop reporting the decision on `review` that its holder keeps refusing as
        conflicting with its own (decided first at another site): recorded in the audit
        log, and out of the outbox."""
        self._reviewers.audit.record(
            AuditEntry(
                AuditKind.REVIEW,
                "report",
                "refused",
                actor=None if review.held_at is None else str(review.held_at),
                party=str(review.receiving_party),
                job=review.job_id,
                asset=str(review.result),
                details={
                    "review_id": review.review_id,
                    "state": review.state.value,
                    "tries": tries,
                    "why": conflict.message,
                },
                user=review.decided_by,
            )
        )
        self._conflicts.pop(review.review_id, None)
        self._outbox.reported(review.review_id, self._clock.now())  # nothing more owed
        logger.warning(
            "review decision refused by the holding site; given up",
            extra={"review": review.review_id, "why": conflict.message},
        )

    def reviewer_sites(self, reviewer: str) -> tuple[SiteId, ...]:
        """The sites of the parties `reviewer` (a party or party category) names, as this
        site's policy says, other than its owner's: by id, from the registry replica."""
        answers: dict[PartyId, bool] = {}
        sites = []
        for record in self._replica.sites():
            owner = record.owner
            if owner == self._owner:
                continue
            if owner not in answers:
                answers[owner] = reviewer in self._reviewers.names_of(owner)
            if answers[owner]:
                sites.append(record.id)
        return tuple(sorted(sites))

    # --- at the site of the reviewer party --------------------------------------------

    def receive_offer(self, review: Review, holder: SiteRecord) -> Review:
        """Keep `review`, offered by the site `holder`, for this site's reviewers;
        PermissionDenied unless this site's owner is its reviewer or, as this site's
        policy says, in its reviewer category."""
        if review.reviewer not in self._reviewers.names_of(self._owner):
            raise PermissionDenied(
                f"review {review.review_id} is for {review.reviewer} to decide, not for"
                f" {self._owner}, the owner of this site",
                {"review_id": review.review_id},
            )
        mirrored = self._queue.mirror(review, holder.id)
        logger.info(
            "review offered here", extra={"review": review.review_id, "site": str(holder.id)}
        )
        return mirrored

    def listing(self, review: Review, user: Person) -> list[dict[str, object]]:
        """The files of the result under `review` for `user`: read through this site's
        egress gate, or, for a mirror, through that of the site holding it."""
        if review.held_at is None:
            image = self._reading.egress.to_reviewer(review, user)
            return self._reading.files.listing(image)
        return self._peers.get(review.held_at).review_files(review.review_id)

    def read(self, review: Review, user: Person, path: str) -> tuple[int, Iterator[bytes]]:
        """The size and bytes of the file `/data/<path>` of that result (as `listing`)."""
        if review.held_at is None:
            image = self._reading.egress.to_reviewer(review, user, path)
            return self._reading.files.read(image, path)
        return self._peers.get(review.held_at).review_file(review.review_id, path)

    # --- at the site holding the result ------------------------------------------------

    def held_review(self, review_id: str, caller: SiteRecord) -> Review:
        """The review with exactly this id, held here for `caller`'s owner to decide (its
        reviewer, or a category it is in as this site's policy says); for any other, the
        answer to an id of nothing (`NotKnown`), so a site learns nothing of reviews that
        are not its owner's."""
        unknown = NotKnown("review", review_id)
        try:
            review = self._queue.get(review_id)
        except NotFound:
            raise unknown from None
        if (
            review.review_id != review_id
            or review.held_at is not None
            or review.reviewer not in self._reviewers.names_of(caller.owner)
        ):
            raise unknown
        return review

    def files_for_site(self, review_id: str, caller: SiteRecord) -> list[dict[str, object]]:
        """The files of the result of review `review_id` for the reviewers at `caller`,
        through the egress gate: if policy lets `caller`'s owner review under its rule."""
        review = self.held_review(review_id, caller)
        image = self._reading.egress.to_reviewer_site(review, caller.id, caller.owner)
        return self._reading.files.listing(image)

    def file_for_site(
        self, review_id: str, caller: SiteRecord, path: str
    ) -> tuple[int, Iterator[bytes]]:
        """One file of that result for the reviewers at `caller` (as `files_for_site`)."""
        review = self.held_review(review_id, caller)
        image = self._reading.egress.to_reviewer_site(review, caller.id, caller.owner, path)
        return self._reading.files.read(image, path)

    def receive_report(
        self, decided: Review, signed: SignedDecision | None, caller: SiteRecord
    ) -> Review:
        """Record the decision `decided` on a review held here, reported by `caller`.

        Refused unless the review is the one held here (InvalidInput), the decision is
        of `caller`'s owner party (PermissionDenied), and its approval or rejection comes
        signed by `caller` (InvalidSignature), stating exactly this decision (InvalidInput).
        A report of the decision recorded already is answered with it; of another, once
        one is recorded, Conflict.
        """
        held = self.held_review(decided.review_id, caller)
        as_asked = _undecided(replace(decided, held_at=None))
        if as_asked != _undecided(held):
            raise InvalidInput(
                f"the decision reported on review {held.review_id} is about another release",
                {"review_id": held.review_id},
            )
        if decided.decided_by_party != caller.owner:
            raise PermissionDenied(
                f"{caller.id} speaks for {caller.owner}, not for {decided.decided_by_party}",
                {"review_id": held.review_id, "site": str(caller.id)},
            )
        decided = replace(decided, held_at=None)
        if held.state.decided and held == decided:
            return held
        checked = self._checked(decided, signed, caller)
        recorded = self._queue.record_reported(decided, caller.owner, checked, site=caller.id)
        logger.info(
            "review decided elsewhere", extra={"review": held.review_id, "site": str(caller.id)}
        )
        return recorded

    def _checked(
        self, decided: Review, signed: SignedDecision | None, caller: SiteRecord
    ) -> SignedDecision:
        """`signed`, if it is the statement of exactly the decision `decided`, signed by
        `caller` as itself."""
        what = "approval" if decided.state is ReviewState.APPROVED else "rejection"
        if signed is None:
            raise InvalidInput(
                f"the {what} of review {decided.review_id} comes without its signed statement"
            )
        statement = signed.statement
        if statement.site != caller.id:
            raise PermissionDenied(
                f"the {what} of review {decided.review_id} is signed as {statement.site},"
                f" not by {caller.id}, the site that reported it",
                {"review_id": decided.review_id, "site": str(caller.id)},
            )
        check = SiteSignatures(self._certificate_of)
        check(caller.id, statement.canonical_bytes(), signed.signature)
        if isinstance(statement, ApprovalStatement):
            expected: object = ApprovalStatement.of_review(decided, caller.id, statement.rule)
        else:
            expected = RejectionStatement.of_review(decided, caller.id)
        if expected != statement:
            raise InvalidInput(
                f"the {what} of review {decided.review_id} states another decision",
                {"review_id": decided.review_id},
            )
        return signed

    def _certificate_of(self, site: SiteId) -> str | None:
        try:
            return self._replica.site(site).tls_cert_pem
        except NotFound:
            return None


def _undecided(review: Review) -> Review:
    """`review` as it was asked for, without a decision."""
    return replace(
        review,
        state=ReviewState.PENDING,
        decided_at=None,
        decided_by=None,
        decided_by_party=None,
        reason=None,
        override=False,
    )
