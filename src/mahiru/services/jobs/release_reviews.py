"""Reviews that hold a result's release: asked for when the result is stored, checked
whenever it would leave.

A ReleaseReviewedBy rule covers every release of a result derived from its asset out of
the site that made it: to another site (its owner party receives it) or to a party. Each
release (result, receiving party, rule) needs its own approved review; the gate
(`egress.Egress`) asks `ReleaseReviews.hold` after the policy allowed the release, and
the job coordinator asks `delivery_hold` for a workflow output made here. What the
answer is, given the reviews, is the pure `policy.review_holds.held_by`.

So the reviewer sees a result before anyone asks for it, `requested_at_store` asks for
the review of each covering rule as a step's outputs are stored, with the rule's checks
run on the output files; a review asked for later (a rule added since, another receiving
party) reuses those check results, or runs the checks on the stored image.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mahiru.clock import Clock
from mahiru.data_archives import extract_data_files
from mahiru.errors import AwaitingReview, InvalidInput, NotFound, ReleaseRejected
from mahiru.model.approvals import ReleaseEntry, ReleaseStatement, SignedRelease
from mahiru.model.digests import BlobInfo
from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs import ResultProvenance, step_results
from mahiru.model.receipts import ReceiptChain
from mahiru.model.reviews import Review
from mahiru.model.workflow import StepOutputRef
from mahiru.policy.output_checks import OutputFile, run_checks
from mahiru.policy.review_holds import held_by
from mahiru.policy.rules import ReleaseReviewedBy
from mahiru.services.jobs.ledger import KnownJob
from mahiru.services.site.policy_view import Concerning, PolicyView
from mahiru.services.site.site import SiteOversight
from mahiru.storage import AssetRepository, BlobStore, ReplicaRepository

logger = logging.getLogger("mahiru.site.reviews")

#: The largest table a check reads (bytes); a larger one fails `min_count` (not shown to pass).
MAX_INSPECTED_BYTES = 16 * 1024 * 1024
#: Extensions of the files whose content the checks read (the tables of `min_count`).
_TABULAR = (".csv", ".json")
#: How many refusals the gate remembers having recorded (the oldest are forgotten first).
_REMEMBERED_REFUSALS = 10_000


@dataclass(frozen=True, slots=True)
class ReleaseSigning:
    """How this site signs the releases of reviewed results: its TLS key, at the time
    of `clock`."""

    sign: Callable[[bytes], bytes]
    clock: Clock


class ReleaseReviews:
    """Finds, asks for and judges the reviews of releases of results made at this site."""

    def __init__(
        self,
        site: SiteId,
        policy: PolicyView,
        oversight: SiteOversight,
        assets: AssetRepository,
        blobs: BlobStore,
        sites: ReplicaRepository,
        signing: ReleaseSigning | None = None,
    ) -> None:
        self._site = site
        #: Signs the releases of reviewed results; None: a site without a key signs none.
        self._signing = signing
        self._policy = policy
        self._oversight = oversight
        self._assets = assets
        self._blobs = blobs
        self._sites = sites
        self._lock = threading.Lock()
        # The refusals recorded already: a job's site asks again each round while a
        # review waits, and the audit log says each once.
        self._refused: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()

    def owner_of(self, site: SiteId) -> PartyId:
        """The party a release to `site` goes to: its owner, as the registry has it."""
        return self._sites.site(site).owner

    def made_here(self, result: ResultId) -> bool:
        """Whether this site computed `result` (its own receipt says so). A result whose
        receipt cannot be read counts as made here: review holds fail closed."""
        try:
            metadata = self._assets.get(result).asset.metadata
            receipt = ReceiptChain.from_metadata(metadata).of(result)
        except (InvalidInput, NotFound):
            return True
        return receipt is None or receipt.receipt.site == self._site

    def hold(
        self,
        result: ResultId,
        provenance: ResultProvenance,
        rules: Sequence[ReleaseReviewedBy],
        receiving_party: PartyId,
        about: Concerning,
    ) -> None:
        """Let the release of `result` (covered by `rules`) to `receiving_party` go, or
        raise AwaitingReview (asking for each review not asked for yet) or
        ReleaseRejected; a refusal is recorded in the audit log, with `about`. A rejection
        of this release holds it also once its rule is revoked: revoking releases nothing
        that was rejected (only this site asks for reviews of what it made)."""
        rejected = self._oversight.reviews.rejection(result, receiving_party)
        if rejected is not None:
            reviews = [rejected]
        elif not rules or not self.made_here(result):
            return
        else:
            job_id = provenance.job_id if about.job is None else JobId(about.job)
            reviews = [
                self._review(result, provenance, rule, receiving_party, job_id) for rule in rules
            ]
        refusal = held_by(reviews)
        if refusal is None:
            return
        self._record(refusal, about)
        raise refusal

    def release_entry(
        self, result: ResultId, rules: Sequence[ReleaseReviewedBy], party: PartyId
    ) -> ReleaseEntry | None:
        """This site's signed release of `result` to `party`, with the signed rules
        `rules` (those covering it now) and their signed approvals, for its chain; None
        if `result` was not made here, was never under review, or a covering rule's
        review of this release is not approved (or was approved unsigned)."""
        if self._signing is None or not self.made_here(result):
            return None
        metadata = self._assets.get(result).asset.metadata
        signed = ReceiptChain.from_metadata(metadata).of(result)
        if signed is None or not (rules or signed.receipt.review_rules):
            return None
        queue, signed_rules, approvals = self._oversight.reviews, [], []
        for rule in rules:
            review = queue.for_release(result, party, rule.rule_id())
            approval = None if review is None else queue.approval(review)
            signed_rule = self._policy.signed_rule(rule.rule_id())
            if approval is None or signed_rule is None:
                return None
            signed_rules.append(signed_rule.to_dict())
            approvals.append(approval)
        statement = ReleaseStatement.of(
            result,
            signed.receipt.digest,
            party,
            self._site,
            [rule.rule_id() for rule in rules],
            self._signing.clock.now(),
        )
        release = SignedRelease(statement, self._signing.sign(statement.canonical_bytes()))
        return ReleaseEntry(release, tuple(signed_rules), tuple(approvals))

    def delivery_hold(self, result: ResultId, provenance: ResultProvenance) -> None:
        """`hold` for delivering a workflow output made here to its job's submitter (no
        image leaves yet: the submitter's users download it through the gate). Read from
        the rules in force without a decision record."""
        item = WorkflowItem(ItemKind.STEP_OUTPUT, provenance.step, provenance.output)
        rules = self._policy.reader().reviews_of(provenance.job, item)
        submitter = provenance.job.submitter
        about = Concerning(
            "deliver output",
            str(submitter),
            party=str(submitter),
            job=provenance.job_id,
            step=provenance.step,
            asset=str(result),
        )
        self.hold(result, provenance, rules, submitter, about)

    def approved_copy(self, provenance: ResultProvenance, chain: ReceiptChain | None) -> bool:
        """Whether a copy stored here of a workflow output another site made may go to its
        job's submitter: no rule in force here covers it, or its verified `chain` carries an
        approval of each covering rule for the submitter. A copy delivered before a rule
        was added carries none: the output is then fetched again, and its maker holds it
        until it is reviewed."""
        item = WorkflowItem(ItemKind.STEP_OUTPUT, provenance.step, provenance.output)
        rules = self._policy.reader().reviews_of(provenance.job, item)
        if not rules:
            return True
        if chain is None:
            return False
        release = (provenance.result, provenance.job.submitter)
        approved = {
            approval.statement.rule_id
            for entry in chain.releases
            if entry.key == release
            for approval in entry.approvals
        }
        return all(rule.rule_id() in approved for rule in rules)

    def requested_at_store(
        self,
        known: KnownJob,
        step: str,
        outputs: Mapping[str, Path],
        images: Mapping[str, BlobInfo],
    ) -> None:
        """Ask for the reviews the covering rules demand of each output of `step` just
        stored here, for each party it is planned to go to, with the checks run on the
        output folders `outputs` (before they are removed)."""
        reader = self._policy.reader()
        results = step_results(known.job, step)
        for output, image in sorted(images.items()):
            item = WorkflowItem(ItemKind.STEP_OUTPUT, step, output)
            rules = reader.reviews_of(known.job, item)
            if not rules:
                continue
            folder = outputs.get(output)
            files = None if folder is None else _files_in(folder, _needs_content(rules))
            provenance = ResultProvenance(results[output], known.job_id, step, output, known.job)
            for party in self._receivers(known, step, output):
                for rule in rules:
                    checks = None if files is None else _checks(rule, files)
                    self._request(provenance, rule, party, known.job_id, image.digest, checks)

    def _receivers(self, known: KnownJob, step: str, output: str) -> list[PartyId]:
        """The parties a step's output is planned to go to: the submitter, for a workflow
        output; the owner of each other site with a step that reads it."""
        parties: list[PartyId] = []
        workflow = known.job.workflow
        if any((r.step, r.output) == (step, output) for r in workflow.outputs.values()):
            parties.append(known.job.submitter)
        for name, consumer in sorted(workflow.steps.items()):
            site = known.plan.assignments.get(name)
            if site is None or site == self._site:
                continue
            if StepOutputRef(step, output) in consumer.inputs.values():
                try:
                    parties.append(self.owner_of(site))
                except NotFound:
                    continue  # asked for when that site asks for the result
        return sorted(set(parties), key=str)

    def _review(
        self,
        result: ResultId,
        provenance: ResultProvenance,
        rule: ReleaseReviewedBy,
        party: PartyId,
        job_id: JobId,
    ) -> Review:
        """The review of this release, asked for now (with the checks) if it was not."""
        queue = self._oversight.reviews
        found = queue.for_release(result, party, rule.rule_id())
        if found is not None:
            return found
        digest = self._digest(result)
        return self._request(provenance, rule, party, job_id, digest, None)

    def _request(
        self,
        provenance: ResultProvenance,
        rule: ReleaseReviewedBy,
        party: PartyId,
        job_id: JobId,
        digest: str,
        checks: list[dict[str, object]] | None,
    ) -> Review:
        queue, result = self._oversight.reviews, provenance.result
        if checks is None:
            checks = self._stored_checks(result, provenance, rule, digest)
        review = queue.request(
            result, party, rule.rule_id(), str(rule.reviewer), job_id, digest, checks
        )
        logger.info(
            "review asked for",
            extra={"result": str(result), "party": str(party), "review": review.review_id},
        )
        return review

    def _stored_checks(
        self, result: ResultId, provenance: ResultProvenance, rule: ReleaseReviewedBy, digest: str
    ) -> list[dict[str, object]]:
        """The rule's checks on `result`: as run for its submitter, if they were, else
        run now on the files of its stored image."""
        if not rule.checks:
            return []
        earlier = self._oversight.reviews.for_release(
            result, provenance.job.submitter, rule.rule_id()
        )
        if earlier is not None and earlier.digest == digest:
            return [dict(check) for check in earlier.checks]
        with tempfile.TemporaryDirectory(prefix="mahiru-review-") as temp:
            extract_data_files(self._blobs.path(digest), Path(temp))
            return _checks(rule, _files_in(Path(temp), _needs_content([rule])))

    def _digest(self, result: ResultId) -> str:
        digest = self._assets.get(result).asset.image_digest
        if digest is None:
            raise NotFound(f"{result} has no image here", {"result": str(result)})
        return digest

    def _record(self, refusal: AwaitingReview | ReleaseRejected, about: Concerning) -> None:
        """Record `refusal` in the audit log, once per review, state and receiver."""
        details = refusal.details if isinstance(refusal.details, dict) else {}
        key = (str(details.get("review")), refusal.type_name, about.action, about.actor)
        with self._lock:
            if key in self._refused:
                return
            self._refused[key] = None
            while len(self._refused) > _REMEMBERED_REFUSALS:
                self._refused.popitem(last=False)
        held = {"decision": refusal.type_name, "explanation": refusal.message, **details}
        self._oversight.audit.record(about.record(False, held))


def _needs_content(rules: Sequence[ReleaseReviewedBy]) -> bool:
    return any(rule.checks.min_count is not None for rule in rules)


def _checks(rule: ReleaseReviewedBy, files: Sequence[OutputFile]) -> list[dict[str, object]]:
    return [result.to_dict() for result in run_checks(rule.checks, files)]


def _files_in(folder: Path, read_tables: bool) -> list[OutputFile]:
    """The regular files under `folder`, by path relative to it, with the content of each
    table small enough to inspect when `read_tables`."""
    return [
        OutputFile(
            path.relative_to(folder).as_posix(),
            size,
            path.read_bytes()
            if read_tables and path.suffix.lower() in _TABULAR and size <= MAX_INSPECTED_BYTES
            else None,
        )
        for path, size in _regular_files(folder)
    ]


def _regular_files(folder: Path) -> Iterator[tuple[Path, int]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path, path.stat().st_size
