"""Results that ReleaseReviewedBy rules cover leave only once reviewed (reference:
"Reviewed results"), in process across the scenario's sites: the step runs at site2 on
party2's data, party2 reviews, and party1's job at site1 waits for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.support.fake_scenario import Scenario
from tests.support.fake_sites import FakeSite
from tests.support.jobs import one_step_job

from mahiru.cli.results import results_group
from mahiru.errors import AwaitingReview, Conflict, ReleaseRejected
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import JobId, PartyId, ResultId
from mahiru.model.jobs import JobState, StepState
from mahiru.model.receipts import ReceiptChain
from mahiru.model.reviews import Review, ReviewState
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_revocation
from mahiru.services.jobs.coordination import REVIEW_POLL


def review_rule(scenario: Scenario, **checks: Any) -> dict[str, Any]:
    """party2 has results of its input reviewed by itself (with `checks`), everywhere;
    the rule."""
    site2 = scenario.site2
    rule: dict[str, Any] = {
        "type": "ReleaseReviewedBy",
        "asset": scenario.input,
        "reviewer": str(site2.party.id),
    }
    if checks:
        rule["checks"] = checks
    site2.add_rule(rule)
    scenario.net.replicate()
    return rule


def submit(scenario: Scenario, site: FakeSite | None = None) -> JobId:
    """The scenario job, submitted at `site` (site1) by a user of its party, driven."""
    site = site or scenario.site1
    job = one_step_job(
        str(site.party.id), scenario.computes["minmax"], scenario.input, scenario.output_base
    )
    job_id = site.jobs.submissions.submit(job, site.party.user()).job_id
    scenario.net.drive()
    return job_id


def reviews_at(site: FakeSite, party: PartyId | None = None) -> list[Review]:
    """The reviews asked for at `site` (of releases to `party`, if given)."""
    found, _ = site.reviewers().list(limit=500)
    return [r for r in found if party is None or r.receiving_party == party]


def awaiting(scenario: Scenario, job_id: JobId) -> Review:
    """The job runs on, noted as awaiting its one review at site2; that review."""
    site1, site2 = scenario.site1, scenario.site2
    (review,) = reviews_at(site2)
    status = site1.job(job_id)
    assert status.state is JobState.RUNNING
    assert status.reason == f"awaiting review by {site2.party.id} (review {review.review_id})"
    assert site2.steps(job_id)["compute"].state is StepState.SUCCEEDED
    return review


def result_of(scenario: Scenario, job_id: JobId) -> ResultId:
    return scenario.site1.job(job_id).outputs()["result"]


def test_a_job_on_reviewed_data_waits_for_the_review_and_ends_once_approved(
    scenario: Scenario,
) -> None:
    """Held at site2 until party2 approves: the job runs on, noted; a download from site2
    is AwaitingReview naming reviewer and review; one approval finishes the job in the
    next round and lets the download go, without asking again."""
    site1, site2 = scenario.site1, scenario.site2
    party1 = site1.party.id
    review_rule(scenario)
    job_id = submit(scenario)
    review = awaiting(scenario, job_id)
    result = result_of(scenario, job_id)
    assert (review.result, review.receiving_party, review.job_id) == (result, party1, job_id)
    assert review.state is ReviewState.PENDING
    assert not site1.records.has(result)  # nothing left site2
    with pytest.raises(AwaitingReview) as held:
        site2.jobs.egress.to_party(result, party1, job_id=job_id)
    assert held.value.details["review"] == review.review_id
    assert held.value.details["reviewer"] == str(site2.party.id)
    assert review.review_id in held.value.message and str(site2.party.id) in held.value.message
    refusals = [
        e
        for e in site2.audited(AuditKind.DECISION, job_id)
        if e.outcome == "denied" and e.details.get("decision") == "AwaitingReview"
    ]
    # The coordinator asked each round; the refusal to site1 and to party1 are recorded once each.
    assert sorted(e.action for e in refusals) == ["release to party", "release to site"]

    # While the review is pending, site1 asks site2 again only after a growing pause,
    # not every round: each ask is an audited decision there.
    asked = len(site2.audited(AuditKind.DECISION, job_id))
    for _ in range(5):
        site1.follow()
    assert len(site2.audited(AuditKind.DECISION, job_id)) == asked
    scenario.net.clock.advance(REVIEW_POLL.cap)
    site1.follow()
    assert len(site2.audited(AuditKind.DECISION, job_id)) > asked
    assert site1.job(job_id).state is JobState.RUNNING

    site2.reviewers().approve(
        review.review_id, site2.party.user("ann", reviewer=True), site2.party.id, "aggregates only"
    )
    site1.follow()
    assert site1.job(job_id).state is JobState.RUNNING  # until the pause is over
    scenario.net.clock.advance(REVIEW_POLL.cap)
    site1.follow()
    status = site1.job(job_id)
    assert (status.state, status.reason) == (JobState.SUCCEEDED, None), status.reason
    assert site1.records.has(result)
    site2.jobs.egress.to_party(result, party1, job_id=job_id).read()
    assert len(reviews_at(site2)) == 1  # the same party is not asked again


def test_a_rejected_release_fails_the_job_with_the_reviewers_reason(scenario: Scenario) -> None:
    """party2 rejects: the job fails saying why, and a download from site2 is
    ReleaseRejected with the reason."""
    site1, site2 = scenario.site1, scenario.site2
    review_rule(scenario)
    job_id = submit(scenario)
    review = awaiting(scenario, job_id)
    site2.reviewers().reject(
        review.review_id,
        site2.party.user("ann", reviewer=True),
        site2.party.id,
        "rows of one person",
    )
    scenario.net.clock.advance(REVIEW_POLL.cap)  # site1 asks again after its pause
    scenario.net.drive()
    status = site1.job(job_id)
    assert status.state is JobState.FAILED
    assert status.reason is not None and "rows of one person" in status.reason
    with pytest.raises(ReleaseRejected) as rejected:
        site2.jobs.egress.to_party(result_of(scenario, job_id), site1.party.id)
    assert rejected.value.details["reason"] == "rows of one person"


def test_revoking_the_rule_releases_nothing_that_was_rejected(scenario: Scenario) -> None:
    """A rule no longer in force holds nothing more, but a rejection under it stays: the
    rejected result is still refused to party1, and a new job asking for it fails too."""
    site1, site2 = scenario.site1, scenario.site2
    rule = review_rule(scenario)
    job_id = submit(scenario)
    review = awaiting(scenario, job_id)
    site2.reviewers().reject(
        review.review_id, site2.party.user("ann", reviewer=True), site2.party.id, "one person"
    )
    site2.services.rules.revoke(
        sign_revocation(rule_from_dict(rule), site2.party.credentials.main_key),
        user=site2.party.user("admin", admin=True),
    )
    scenario.net.replicate()
    with pytest.raises(ReleaseRejected, match="one person"):
        site2.jobs.egress.to_party(review.result, site1.party.id)
    again = submit(scenario)
    scenario.net.clock.advance(REVIEW_POLL.cap)
    scenario.net.drive()
    status = site1.job(again)
    assert status.state is JobState.FAILED
    assert status.reason is not None and "one person" in status.reason


def test_failed_checks_show_in_the_review_and_only_an_override_approves(
    scenario: Scenario,
) -> None:
    """The rule's checks run on the step's output files as they are stored: minmax writes
    a JSON array of numbers (not objects) of more than 4 bytes, so max_bytes and
    min_count fail; approving without override is refused, with override it goes."""
    site1, site2 = scenario.site1, scenario.site2
    review_rule(scenario, max_bytes=4, min_count={"column": "n", "at_least": 5})
    job_id = submit(scenario)
    review = awaiting(scenario, job_id)
    outcomes = {c["check"]: c for c in review.checks}
    assert set(outcomes) == {"max_bytes", "min_count"}
    assert (
        not outcomes["max_bytes"]["passed"]
        and "over the limit of 4" in (outcomes["max_bytes"]["detail"])
    )
    assert not outcomes["min_count"]["passed"]
    assert outcomes["min_count"]["detail"].startswith("data.json: row 1 is not an object")
    reviewer, party2 = site2.party.user("ann", reviewer=True), site2.party.id
    with pytest.raises(Conflict, match="max_bytes, min_count failed"):
        site2.reviewers().approve(review.review_id, reviewer, party2, "looks fine")
    site1.follow()
    assert site1.job(job_id).state is JobState.RUNNING
    site2.reviewers().approve(review.review_id, reviewer, party2, "ten rows", override=True)
    scenario.net.clock.advance(REVIEW_POLL.cap)
    site1.follow()
    assert site1.job(job_id).state is JobState.SUCCEEDED


def test_a_result_stored_before_the_rule_is_held_too(scenario: Scenario) -> None:
    """A result made and delivered before party2's rule: its next release from site2 is
    held (the checks run on the stored image), while site1's own copy, released before,
    is not site1's to hold."""
    site1, site2 = scenario.site1, scenario.site2
    party1 = site1.party.id
    job_id = submit(scenario)
    assert site1.job(job_id).state is JobState.SUCCEEDED
    result = result_of(scenario, job_id)
    review_rule(scenario, max_bytes=1000)
    with pytest.raises(AwaitingReview):
        site2.jobs.egress.to_party(result, party1)
    (review,) = reviews_at(site2)
    assert review.receiving_party == party1
    assert [(c["check"], c["passed"]) for c in review.checks] == [("max_bytes", True)]
    assert review.checks[0]["detail"].endswith("in 1 file, within 1000")
    site1.jobs.egress.to_party(result, party1).read()  # made at site2, not site1


def test_another_party_reusing_the_result_is_held_again_for_itself(scenario: Scenario) -> None:
    """Approved for party1, the result is reused for party3's job at site3: site2 holds
    it again, for party3 (with the checks party1's review had); party1 is not asked again."""
    site1, site2 = scenario.site1, scenario.site2
    site3 = scenario.net.sites["party3"]
    party1, party3 = site1.party.id, site3.party.id
    for site, collection in ((site2, "results"), (site1, "results")):
        owned = f"asset_collection:{site.party.namespace}:{collection}"
        site.add_rule({"type": "MayAccess", "site": str(site3.id), "asset": owned})
        site.add_rule(
            {"type": "MayUse", "party": str(party3), "asset": owned, "conditions": "study"}
        )
    review_rule(scenario, max_bytes=1000)
    first = submit(scenario)
    review = awaiting(scenario, first)
    site2.reviewers().approve(
        review.review_id, site2.party.user("ann", reviewer=True), site2.party.id, "ok"
    )
    scenario.net.clock.advance(REVIEW_POLL.cap)
    scenario.net.drive()
    assert site1.job(first).state is JobState.SUCCEEDED

    second = submit(scenario, site3)
    assert site2.steps(second)["compute"].state is StepState.REUSED
    (again,) = reviews_at(site2, party3)
    assert again.review_id != review.review_id and again.state is ReviewState.PENDING
    assert again.checks == review.checks
    status = site3.job(second)
    assert status.state is JobState.RUNNING
    assert status.reason == f"awaiting review by {site2.party.id} (review {again.review_id})"
    assert len(reviews_at(site2, party1)) == 1
    site2.jobs.egress.to_party(result_of(scenario, first), party1).read()
    assert len(reviews_at(site2, party1)) == 1


def test_the_delivered_result_carries_its_approval_and_verifies_offline(
    scenario: Scenario, tmp_path: Path
) -> None:
    """Once approved and collected, the result's record at site1 carries site2's signed
    release to party1 with the signed approval, and `mahiru results verify` on it, with
    the registry's records only, shows who approved it."""
    site1, site2 = scenario.site1, scenario.site2
    review_rule(scenario)
    job_id = submit(scenario)
    review = awaiting(scenario, job_id)
    site2.reviewers().approve(
        review.review_id, site2.party.user("ann", reviewer=True), site2.party.id, "aggregates"
    )
    scenario.net.clock.advance(REVIEW_POLL.cap)
    site1.follow()
    assert site1.job(job_id).state is JobState.SUCCEEDED
    result = result_of(scenario, job_id)
    approval = site2.reviewers().approval(site2.reviewers().get(review.review_id))
    assert approval is not None and approval.statement.decided_by == f"ann@{site2.party.id}"

    record = site1.records.get(result)
    chain = ReceiptChain.from_metadata(record.asset.metadata)
    (entry,) = chain.releases
    assert entry.key == (result, site1.party.id)
    assert entry.approvals == (approval,)
    signed = chain.of(result)
    assert signed is not None and signed.receipt.review_rules  # named when it was made

    document = {
        "id": str(result),
        "image_digest": record.asset.image_digest,
        "metadata": dict(record.asset.metadata),
    }
    sites = scenario.net.sites.values()
    registry = {
        "parties": [site.party.record().to_dict() for site in sites],
        "sites": [site.record().to_dict() for site in sites],
    }
    (tmp_path / "result.json").write_text(json.dumps(document))
    (tmp_path / "registry.json").write_text(json.dumps(registry))
    arguments = ["verify", str(tmp_path / "result.json"), "--registry"]
    arguments.append(str(tmp_path / "registry.json"))
    shown = CliRunner().invoke(results_group, arguments)
    assert shown.exit_code == 0, shown.output
    assert "1 reviewed release(s), 1 approval(s)" in shown.output
    assert f"approved by ann@{site2.party.id} ({site2.party.id})" in shown.output
    assert "'aggregates'" in shown.output

    stripped = {**document, "metadata": {"receipts": document["metadata"]["receipts"]}}
    (tmp_path / "result.json").write_text(json.dumps(stripped))
    refused = CliRunner().invoke(results_group, arguments)
    assert refused.exit_code == 1
    assert "carries no approved release of it" in refused.output


def test_a_job_reusing_a_copy_delivered_before_the_rule_waits_for_its_review(
    scenario: Scenario,
) -> None:
    """site1 holds party1's copy of the result from before party2's rule. A new job of the
    same computation does not finish on that copy: site1 fetches the result again, site2
    holds it for review, and once approved the copy at site1 carries the approval, so a
    third job finishes without asking again."""
    site1, site2 = scenario.site1, scenario.site2
    first = submit(scenario)
    assert site1.job(first).state is JobState.SUCCEEDED
    result = result_of(scenario, first)
    assert not site1.jobs.ports.results.verified_chain(result).releases  # type: ignore[union-attr]
    review_rule(scenario)

    second = submit(scenario)
    (review,) = reviews_at(site2)
    assert (review.result, review.receiving_party) == (result, site1.party.id)
    status = site1.job(second)
    assert status.state is JobState.RUNNING
    assert status.reason == f"awaiting review by {site2.party.id} (review {review.review_id})"
    assert site2.steps(second)["compute"].state is StepState.REUSED
    site2.reviewers().approve(
        review.review_id, site2.party.user("ann", reviewer=True), site2.party.id, "counts only"
    )
    scenario.net.clock.advance(REVIEW_POLL.cap)
    scenario.net.drive()
    assert site1.job(second).state is JobState.SUCCEEDED
    chain = site1.jobs.ports.results.verified_chain(result)
    assert chain is not None
    (entry,) = chain.releases
    assert entry.key == (result, site1.party.id)
    assert [a.statement.review_id for a in entry.approvals] == [review.review_id]

    third = submit(scenario)
    assert site1.job(third).state is JobState.SUCCEEDED
    assert len(reviews_at(site2)) == 1


@pytest.mark.parametrize(
    "asks",
    [
        ("record", "image"),  # a record announces its image: one decision record for both
        ("record", "record", "image"),
        ("image", "image"),
        ("record", "image", "image"),
    ],
)
def test_a_held_result_stays_held_however_site1_asks_for_it(
    scenario: Scenario, asks: tuple[str, ...]
) -> None:
    """While its review is pending, every ask of site1 for the result (its record, then
    its image, in any order and number) is AwaitingReview: a decision kept from one ask
    for the next never lets the image past the review's hold."""
    site1, site2 = scenario.site1, scenario.site2
    review_rule(scenario)
    job_id = submit(scenario)
    review = awaiting(scenario, job_id)
    result = result_of(scenario, job_id)
    egress, to = site2.jobs.egress, site1.id
    for ask in asks:
        with pytest.raises(AwaitingReview) as held:
            if ask == "record":
                egress.record_for_site(result, to)
            else:
                egress.to_site(result, to)
        assert held.value.details["review"] == review.review_id, ask
