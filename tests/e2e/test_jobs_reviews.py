"""A result made from reviewed data, with real sites and containers: held at the data
owner's site until its reviewer approves, then delivered (reference: "Reviewed results")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.jobs import Scenario, compute_to_data
from tests.support.sites import network
from tests.support.waiting import wait_until

from mahiru.client.jobs import JobsClient, PeerJobsClient
from mahiru.errors import AwaitingReview
from mahiru.model.identifiers import PartyId
from mahiru.model.jobs import JobState
from mahiru.model.people import Person
from mahiru.runtime import DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET
from mahiru.services.images import receive_image
from mahiru.services.site.reviews import ReviewQueue
from mahiru.storage import BlobStore

pytestmark = pytest.mark.e2e

WAIT = 120.0


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
) -> Iterator[Scenario]:
    """Compute-to-data on party1's and party2's sites, party2 reviewing what its input makes."""
    root = tmp_path_factory.mktemp("reviews")
    names = ("party1", "party2")
    with network(root, lambda name: f"sqlite:///{root / name}.db", names) as net:
        net.replicate_all()
        found = compute_to_data(
            net,
            scenario_archives[INPUT_ASSET],
            scenario_archives[OUTPUT_BASE_ASSET],
            {"minmax": scenario_archives[MINMAX_ASSET]},
        )
        rule = {"type": "ReleaseReviewedBy", "asset": found.input, "reviewer": found.party2}
        with found.site2.admin() as admin:
            admin.add_rule(found.site2.party.sign({**rule, "checks": {"max_bytes": 1000}}))
        net.replicate_all()
        yield found


def reviewers(scenario: Scenario) -> ReviewQueue:
    """site2's review queue (who may decide is site2's policy's answer)."""
    return scenario.site2.site.services.oversight.reviews


def test_a_reviewed_result_is_refused_with_409_until_approved_then_delivered(
    scenario: Scenario, tmp_path: Path
) -> None:
    """The job runs on, noted awaiting party2's review; site1 fetching the result from
    site2 over HTTPS gets 409 AwaitingReview naming reviewer and review; approved, the
    job succeeds and the output reads [1, 34]."""
    party1 = scenario.site1.party
    with JobsClient(scenario.site1.internal_url, party1.user, timeout=60) as client:
        job_id = client.submit(scenario.job()).status.job_id
        view = wait_until(
            lambda: (v := client.status(job_id)).status.reason and v, WAIT, "a review to wait for"
        )
        assert view.status.state is JobState.RUNNING
        (review,) = reviewers(scenario).pending()[0]
        assert view.status.reason == (
            f"awaiting review by {scenario.party2} (review {review.review_id})"
        )
        assert [(c["check"], c["passed"]) for c in review.checks] == [("max_bytes", True)]
        result = review.result
        peer = PeerJobsClient(scenario.site2.external_url, scenario.site1.identity)
        with peer, pytest.raises(AwaitingReview) as held:
            receive_image(BlobStore(tmp_path / "blobs"), peer.fetch_result(result), str(result))
        assert held.value.details["review"] == review.review_id
        assert held.value.details["reviewer"] == scenario.party2

        person = Person("ann", PartyId.parse(scenario.party2), reviewer=True)
        started = time.monotonic()
        reviewers(scenario).approve(review.review_id, person, person.party, "aggregates only")
        done = client.wait(job_id, WAIT)
        print(f"approval to job end: {time.monotonic() - started:.2f} s")
        assert (done.status.state, done.status.reason) == (JobState.SUCCEEDED, None)
        files = client.download_output(job_id, "result", tmp_path / "out")
        assert json.loads(files[0].read_text()) == [1, 34]
