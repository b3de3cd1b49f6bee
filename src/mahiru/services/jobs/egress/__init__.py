"""The egress gate: the one place that decides whether a stored asset or result leaves.

Every image that goes out of this site - to a peer over the external API, to
a user over the internal API, as a job's output - is opened through here:
the site's own policy engine decides (access for a site, use for a party),
and only an allowing decision makes the `Release` that `AssetStore.open_image`
requires. A party's users may always take back an asset of the party's own
namespace, by a decision that says so, audited like any other. A result's
permissions are recomputed from its recorded provenance (the job that made
it), never taken from the asker. A result made here that ReleaseReviewedBy rules
cover leaves, once policy allows it, only when each rule's review of that release
is approved (`release_reviews.py`): AwaitingReview or ReleaseRejected otherwise,
asked only after the allowing decision, so it says nothing to whoever may not
have the result. What the decisions are made by is in
`release_rules.py`; the gate takes them, audits them and opens the images.
`holders` asks the same questions for a page (the dashboard's Assets), unaudited,
releasing nothing.

What goes out about a step and the files of a live data set are values only
this package builds (`StepView`, `LiveFile` in `values.py`: their constructors
ask for a key no module outside the package has). A step's output - its
failure reason, exit code and log tail - goes to a party only where that
party may use every output of the step, and otherwise stays here (in the
site's own log), the view saying why it was withheld. A live file goes to
the site its grant names, checked against the digest recorded when its image
was unpacked as it is read, and recorded as a transfer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from functools import partial

from mahiru.errors import Conflict, NotFound, NotKnown, PermissionDenied
from mahiru.model.assets import AssetRecord
from mahiru.model.identifiers import AssetId, JobId, PartyId, ResultId, SiteId
from mahiru.model.jobs import ResultProvenance, StepStatus
from mahiru.model.people import Person
from mahiru.model.receipts import ReceiptChain
from mahiru.model.reviews import Review
from mahiru.model.workflow import Job
from mahiru.policy.decisions import Decision, Release
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.rules import ReleaseReviewedBy
from mahiru.services.jobs.egress.values import (
    _GATE,
    LiveFile,
    StepView,
    _has_output,
    _item,
    _outputs,
    _withheld,
)
from mahiru.services.jobs.live_grants import LiveGrants, is_live
from mahiru.services.jobs.release_reviews import ReleaseReviews
from mahiru.services.jobs.release_rules import (
    OneResultAnswers,
    about_release,
    party_decision,
    site_decision,
)
from mahiru.services.site.assets import AssetStore, ImageFile
from mahiru.services.site.policy_view import Concerning, PolicyView
from mahiru.services.site.reviewers import reviewing
from mahiru.services.site.transfers import Transfer, TransferLog
from mahiru.storage import ProvenanceRepository

__all__ = ["Egress", "LiveFile", "StepView"]

logger = logging.getLogger("mahiru.site.egress")


class Egress:
    """Decides, then opens: stored images for the sites and parties policy lets have them."""

    def __init__(
        self,
        policy: PolicyView,
        assets: AssetStore,
        provenance: ProvenanceRepository,
        transfers: TransferLog,
        live: LiveGrants,
        reviews: ReleaseReviews,
    ) -> None:
        self._live = live
        self._reviews = reviews
        self._policy = policy
        self._assets = assets
        self._transfers = transfers
        self._provenance_store = provenance

    def _provenance(self, stored: AssetId | ResultId) -> ResultProvenance | None:
        """How a result was made (NotFound if that is not recorded); None for an asset."""
        if isinstance(stored, AssetId):
            return None
        return self._provenance_store.get_provenance(stored)

    def release_to_site(self, stored: AssetId | ResultId, site: SiteId) -> Release:
        """Leave for `stored` to go to `site`; PermissionDenied with the reasons.

        For a result, a site that may not have it is told "not found", exactly
        as for a result that does not exist: results are named by how they are
        computed, so anyone can name one, and the answer must not say whether
        it was computed here. The reasons go to this site's log.
        """
        return self._release_to_site(stored, site)[0]

    def _release_to_site(
        self, stored: AssetId | ResultId, site: SiteId, *, ahead: bool = False
    ) -> tuple[Release, Concerning]:
        # A record announces its image: one decision, one audit record, for both
        # (`ahead`); an image fetched alone is decided and recorded on its own.
        decide = self._policy.decide_ahead if ahead else self._policy.decide_announced
        if isinstance(stored, AssetId):
            about = about_release("release to site", str(site), stored, None)
            decision = decide(lambda engine: site_decision(engine, stored, None, site), about)
            return Release(decision), about
        unavailable = NotKnown("result", stored)
        try:
            provenance = self._provenance(stored)
        except NotFound:
            raise unavailable from None
        about = about_release("release to site", str(site), stored, provenance)
        covering: list[ReleaseReviewedBy] = []

        def evaluate(engine: PolicyEngine) -> Decision:
            # The review rules are read from the engine that decides, so both answers
            # come from the same rules in force.
            if provenance is not None:
                covering[:] = engine.reviews_of(provenance.job, _item(provenance))
            return site_decision(engine, stored, provenance, site)

        decision = decide(evaluate, about)
        if not decision.allowed:
            logger.info(
                "result refused",
                extra={"result": str(stored), "site": str(site), "why": decision.failures()},
            )
            raise unavailable
        # Only now, once the site may have it, may the answer say a review holds it (a
        # rejection holds it also when no rule in force covers it any more).
        if provenance is not None:
            self._reviews.hold(stored, provenance, covering, self._reviews.owner_of(site), about)
        return Release(decision), about

    def _release_to_party(
        self,
        stored: AssetId | ResultId,
        party: PartyId,
        job_id: JobId | None = None,
        user: Person | None = None,
    ) -> tuple[Release, Concerning]:
        provenance = self._provenance(stored)
        covering: list[ReleaseReviewedBy] = []

        def evaluate(engine: PolicyEngine) -> Decision:
            if provenance is not None:  # a result (never an asset of the party's own)
                covering[:] = engine.reviews_of(provenance.job, _item(provenance))
            return party_decision(engine, stored, provenance, party)

        about = replace(
            about_release("release to party", str(party), stored, provenance), party=str(party)
        )
        if job_id is not None:  # the job the user asked for its output (another made it first)
            about = replace(about, job=job_id)
        if user is not None:
            about = replace(about, user=str(user))
        decision = self._policy.decide(evaluate, about)
        if decision.allowed and isinstance(stored, ResultId) and provenance is not None:
            self._reviews.hold(stored, provenance, covering, party, about)
        return Release(decision), about

    def holders(
        self, stored: AssetId | ResultId, sites: Iterable[SiteId], parties: Iterable[PartyId]
    ) -> tuple[list[SiteId], list[PartyId]]:
        """Which of `sites` policy lets have `stored`, and which of `parties` use it, as
        `release_to_site` and `to_party` decide (a result: from how it was made; none
        if that is not recorded). Read without a record: an answer for a page, not a
        release; reviews are not asked."""
        try:
            provenance = self._provenance(stored)
        except NotFound:
            return [], []
        reader = OneResultAnswers(self._policy.reader())
        return [
            site for site in sites if site_decision(reader, stored, provenance, site).allowed
        ], [party for party in parties if party_decision(reader, stored, provenance, party).allowed]

    def record_for_site(self, stored: AssetId | ResultId, site: SiteId) -> AssetRecord:
        """The record of `stored` for `site`, if this site's policy lets it have it (as
        `release_to_site`); a reviewed result's chain then carries this release, signed,
        with its approvals."""
        self._release_to_site(stored, site, ahead=True)
        record = self._assets.get(stored)
        if not isinstance(stored, ResultId):
            return record
        return self.shown_to(record, self._reviews.owner_of(site))

    def shown_to(self, record: AssetRecord, party: PartyId) -> AssetRecord:
        """`record` as it goes to `party`: for a result made here under review, its
        chain with the signed release to `party` and its approvals, once every covering
        rule's review of that release is approved; unchanged otherwise. Reads the rules
        in force without a decision record: it releases nothing by itself."""
        result = record.asset.id
        if not isinstance(result, ResultId):
            return record
        try:
            provenance = self._provenance(result)
        except NotFound:
            return record
        if provenance is None:
            return record
        covering = self._policy.reader().reviews_of(provenance.job, _item(provenance))
        entry = self._reviews.release_entry(result, covering, party)
        if entry is None:
            return record
        metadata = record.asset.metadata
        chain = ReceiptChain.from_metadata(metadata).with_release(entry)
        asset = replace(record.asset, metadata={**metadata, **chain.to_metadata()})
        return replace(record, asset=asset)

    def to_site(self, stored: AssetId | ResultId, site: SiteId) -> ImageFile:
        """The image of `stored`, for `site`, if this site's policy lets it have it.

        A data set its owner marked for live access only never leaves whole:
        its bytes go only through the live channel, to a running step.
        """
        release, about = self._release_to_site(stored, site)
        if isinstance(stored, AssetId) and is_live(self._assets.get(stored).asset.metadata):
            raise PermissionDenied(
                f"{stored} is served only live, to a step that reads it while it runs;"
                " its image never leaves the site that holds it",
                {"asset": str(stored)},
            )
        return self._recorded(self._assets.open_image(stored, release), stored, about, str(site))

    def to_party(
        self,
        stored: AssetId | ResultId,
        party: PartyId,
        *,
        job_id: JobId | None = None,
        user: Person | None = None,
    ) -> ImageFile:
        """The image of `stored`, for a user of `party`, if policy lets the party use it.

        `job_id` names the job whose output it is delivered as, and `user` the
        person who asked, for the audit log.
        """
        release, about = self._release_to_party(stored, party, job_id, user)
        image = self._assets.open_image(stored, release)
        return self._recorded(image, stored, about, str(party))

    def _recorded(
        self, image: ImageFile, stored: AssetId | ResultId, about: Concerning, destination: str
    ) -> ImageFile:
        """`image`, each read of it recorded in the audit log as a transfer to `destination`."""
        transfer = Transfer(
            stored,
            str(self._transfers.site),
            destination,
            party=about.party,
            job=about.job,
            user=about.user,
        )
        return image.recorded_by(partial(self._transfers.sending, transfer, image.digest))

    def live_file(self, token: str, caller: SiteId, path: str) -> LiveFile:
        """A file of the data set granted to `caller` for one step, under the grant's decision.

        Its bytes are checked against the sha256 recorded when the set's
        verified image was unpacked, as they are read; each read is recorded as
        a transfer to `caller`, for the job's party.
        """
        granted = self._live.file(token, caller, path)
        grant = granted.grant
        transfer = Transfer(
            grant.asset,
            str(self._transfers.site),
            str(caller),
            party=str(grant.party),
            job=grant.job_id,
            path=granted.path,
        )
        return LiveFile(
            granted.path,
            granted.digest,
            granted.size,
            grant.release,
            granted.location,
            partial(self._transfers.sending, transfer, granted.digest),
            _GATE,
        )

    def live_files(self, token: str, caller: SiteId) -> list[dict[str, object]]:
        """The files of the data set granted to `caller`: path, size and recorded sha256."""
        return self._live.files(token, caller)

    def step_views(
        self, job: Job, statuses: Iterable[StepStatus], party: PartyId
    ) -> list[StepView]:
        """`statuses` as a user or the site of `party` may see them: each step's output
        (failure reason, exit code, log tail) only where `party` may use every output of
        the step; otherwise its state and times, and "withheld" saying why.

        A step's reason and exit code are its output as much as its log is: a
        failure can be made to say anything the step read.
        """
        statuses = list(statuses)
        decisions = self._may_see_outputs(job, [s.step for s in statuses if _has_output(s)], party)
        views = []
        for status in statuses:
            decision = decisions.get(status.step)
            if decision is not None and not decision.allowed:
                status = _withheld(status, "; ".join(decision.failures()))
            views.append(StepView(status, _GATE))
        return views

    def log_release(self, job: Job, step: str, party: PartyId) -> None:
        """Nothing if `party` may read the log of `step` as it is written (it may use every
        output of the step, as for the kept log); PermissionDenied saying why otherwise."""
        decision = self._may_see_outputs(job, [step], party)[step]
        if not decision.allowed:
            failures = decision.failures()
            raise PermissionDenied(
                f"the log of step {step!r} is withheld: " + "; ".join(failures),
                {"step": step, "withheld": failures},
            )

    def step_states(self, statuses: Iterable[StepStatus]) -> list[StepView]:
        """`statuses` for a site that needs to know how far steps are, and nothing they made."""
        return [
            StepView(_withheld(s, "states only") if _has_output(s) else s, _GATE) for s in statuses
        ]

    def _may_see_outputs(self, job: Job, steps: list[str], party: PartyId) -> dict[str, Decision]:
        """Per step, whether `party` may use every output of it: the decision the step's
        output goes out under. Read from the policy without an audit record (a view is
        asked for on every poll; the decisions that moved the data are recorded)."""
        if not steps:
            return {}
        engine = self._policy.reader()  # a filter on what is shown, not an act: unaudited
        permissions = engine.job_permissions(job)
        return {
            step: Decision.all_of(
                str(party),
                "see the output of",
                step,
                tuple(
                    engine.may_use(party, permissions[item], str(item))
                    for item in _outputs(job, step)
                ),
            )
            for step in steps
        }

    def to_reviewer(self, review: Review, user: Person, path: str | None = None) -> ImageFile:
        """The image of the result `review` is about, for `user` to inspect before deciding
        it (one file of it, `path`, as the transfer records), if policy lets the user's
        party review under the review's rule; Conflict if the result's image is not the one
        under review."""
        return self._to_reviewing(review, user.party, str(user.party), str(user), path)

    def to_reviewer_site(
        self, review: Review, site: SiteId, party: PartyId, path: str | None = None
    ) -> ImageFile:
        """As `to_reviewer`, for the reviewers of `party` at its site `site`, which fetches
        the files for them: decided for `party`, recorded as a transfer to `site`."""
        return self._to_reviewing(review, party, str(site), None, path)

    def _to_reviewing(
        self, review: Review, party: PartyId, destination: str, user: str | None, path: str | None
    ) -> ImageFile:
        about = Concerning(
            "review read",
            str(party),
            party=str(party),
            job=review.job_id,
            asset=str(review.result),
            user=user,
        )
        decision = self._policy.decide(reviewing(self._policy, party, review.rule_id), about)
        image = self._assets.open_image(review.result, Release(decision))
        if image.digest != review.digest:
            raise Conflict(
                f"{review.result} no longer has the image under review {review.review_id}",
                {"review_id": review.review_id, "digest": f"sha256:{review.digest}"},
            )
        transfer = Transfer(
            review.result,
            str(self._transfers.site),
            destination,
            party=str(party),
            job=review.job_id,
            user=user,
            path=path,
        )
        return image.recorded_by(partial(self._transfers.sending, transfer, image.digest))
