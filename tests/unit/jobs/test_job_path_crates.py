"""A job's crate at the submitter's site holds only what the egress gate releases to the
caller: an output still under review is left out, and goes in once approved."""

from __future__ import annotations

import hashlib

import pytest
from tests.support.fake_scenario import Scenario
from tests.support.fake_sites import FakeSite
from tests.unit.jobs.test_job_path_reviews import awaiting, result_of, review_rule, submit

from mahiru.errors import NotKnown
from mahiru.model.crates import JobCrate
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import JobState
from mahiru.model.people import Person
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_revocation
from mahiru.services.jobs.coordination import REVIEW_POLL
from mahiru.services.jobs.crates import ImageReader, JobCrates


def _crate(
    site: FakeSite, job_id: JobId, person: Person
) -> tuple[JobCrate, dict[str, ImageReader]]:
    return JobCrates(site.jobs.submissions, site.services.assets, site.jobs.egress).crate(
        job_id, person
    )


def _parts(crate: JobCrate) -> list[str]:
    (root,) = [e for e in crate.metadata["@graph"] if e["@id"] == "./"]
    parts = root["hasPart"]
    return [p["@id"] for p in (parts if isinstance(parts, list) else [parts])]


def test_an_output_awaiting_review_is_left_out_and_goes_in_once_approved(
    scenario: Scenario,
) -> None:
    """While party2's review holds the result, the crate names no output file; approved,
    the output is in, with the digest its receipt signs, read through the gate."""
    site1, site2 = scenario.site1, scenario.site2
    user = site1.party.user()
    review_rule(scenario)
    job_id = submit(scenario)
    review = awaiting(scenario, job_id)
    held, images = _crate(site1, job_id, user)
    # Only party1's own output base is in (an asset of its namespace, stored at site1).
    assert [str(i.stored) for i in held.images] == [scenario.output_base]
    assert set(images) == {i.path for i in held.images}
    assert not [p for p in _parts(held) if p.startswith(("outputs/", "receipts/"))]

    site2.reviewers().approve(
        review.review_id, site2.party.user("ann", reviewer=True), site2.party.id, "fine"
    )
    scenario.net.clock.advance(REVIEW_POLL.cap)
    site1.follow()
    assert site1.job(job_id).state is JobState.SUCCEEDED
    released, images = _crate(site1, job_id, user)
    (image,) = [i for i in released.images if i.path.startswith("outputs/")]
    assert image.stored == result_of(scenario, job_id)
    assert {"receipts/result.json", image.path} <= set(_parts(released))
    hasher = hashlib.sha256()
    for chunk in images[image.path]():
        hasher.update(chunk)
    assert hasher.hexdigest() == image.digest


def test_another_users_job_has_no_crate(scenario: Scenario) -> None:
    """A plain user sees only their own jobs: another's is not known to them."""
    job_id = submit(scenario)
    with pytest.raises(NotKnown):
        _crate(scenario.site1, job_id, scenario.site1.party.user("mallory"))


def test_an_output_the_party_may_no_longer_use_is_named_with_the_refusal(
    scenario: Scenario,
) -> None:
    """party2 revokes party1's use of its results after the job: the output stays in the
    job's record and receipts, but its image is left out, the gate's refusal said."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = submit(scenario)
    assert site1.job(job_id).state is JobState.SUCCEEDED
    results2 = f"asset_collection:{site2.party.namespace}:results"
    use = {"type": "MayUse", "party": str(site1.party.id), "asset": results2,
           "conditions": "analysis"}  # fmt: skip
    site2.services.rules.revoke(
        sign_revocation(rule_from_dict(use), site2.party.credentials.main_key),
        user=site2.party.user("admin", admin=True),
    )
    scenario.net.replicate()
    crate, images = _crate(site1, job_id, site1.party.user())
    assert not [i for i in crate.images if i.path.startswith("outputs/")]
    assert not [path for path in images if path.startswith("outputs/")]
    assert "receipts/result.json" in _parts(crate)  # what was made is still told
    (output,) = [
        e
        for e in crate.metadata["@graph"]
        if e.get("identifier") == str(result_of(scenario, job_id))
    ]
    assert output["description"].startswith("withheld: ")
