"""A result held at one party's site, reviewed at another's, with real sites and
containers: party1's job reads party2's data at site2, whose rule names party3 as
reviewer; site2 holds the result and offers the review to site3, where party3's reviewer
decides over HTTPS; the decision, reported back signed, releases the result to the job
(or fails it with the reason), as docs/reviews.md ("A reviewer of another party") says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.jobs import Scenario, asset_id, compute_to_data
from tests.support.sites import Network, SiteServer, client_as, network
from tests.support.waiting import wait_until

from mahiru.client.http import TlsIdentity
from mahiru.client.jobs import JobsClient
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.jobs import JobState
from mahiru.model.receipts import ReceiptChain
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki.names import Role
from mahiru.runtime import DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET

pytestmark = pytest.mark.e2e

WAIT = 120.0


@dataclass(frozen=True)
class World:
    """The scenario, party3's site, a reviewer of party3 there and the input's archive."""

    net: Network
    scenario: Scenario
    site3: SiteServer
    reviewer: TlsIdentity
    input_archive: Path


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
) -> Iterator[World]:
    """Compute-to-data on party1's and party2's sites, and party3's site."""
    root = tmp_path_factory.mktemp("cross-site-reviews")
    names = ("party1", "party2", "party3")
    with network(root, lambda name: f"sqlite:///{root / name}.db", names) as net:
        net.replicate_all()
        found = compute_to_data(
            net,
            scenario_archives[INPUT_ASSET],
            scenario_archives[OUTPUT_BASE_ASSET],
            {"minmax": scenario_archives[MINMAX_ASSET]},
        )
        site3 = net.sites["party3"]
        reviewer = net.certs.user(site3.party, "rita", Role.REVIEWER.value)
        yield World(net, found, site3, reviewer, scenario_archives[INPUT_ASSET])


def reviewed_input(world: World, name: str) -> str:
    """A copy of the input at site2 as data `name`, its results usable by party1 as the
    input's are, under a rule of party2 that party3 reviews them: each test makes its own
    results and reviews."""
    site2, party2 = world.scenario.site2, world.scenario.site2.party
    data = asset_id(site2, name)
    rules: list[dict[str, Any]] = [
        {"type": "MayAccess", "site": site2.id, "asset": data},
        {
            "type": "ResultOfDataIn",
            "data": data,
            "compute": "*",
            "output": "*",
            "collection": f"asset_collection:{party2.namespace}:results",
        },
        {"type": "ReleaseReviewedBy", "asset": data, "reviewer": world.site3.party.id},
    ]
    with site2.admin() as admin:
        admin.upload_asset(Asset(AssetId.parse(data), AssetKind.DATA), world.input_archive)
        for rule in rules:
            admin.add_rule(party2.sign(rule))
    world.net.replicate_all()
    return data


def offered(world: World, client: JobsClient, job_id: str) -> Review:
    """The job's review once it is held at site2 and listed to party3's reviewer at site3."""
    wait_until(lambda: client.status(job_id).status.reason, WAIT, "a review to wait for")

    def listed() -> Review | None:
        with client_as(world.reviewer, world.site3.internal_url) as api:
            reviews = api.get("/reviews", params={"state": "pending", "limit": 500}).json()
        mine = [Review.from_dict(r) for r in reviews["reviews"] if r["job_id"] == job_id]
        return mine[0] if mine else None

    return wait_until(listed, WAIT, "the review offered to party3's site")


def test_a_result_held_at_site2_is_released_by_an_approval_at_party3_s_site(
    world: World, tmp_path: Path
) -> None:
    """The job awaits party3's review; site3 lists it (held at site2) and its reviewer
    approves there; site2 records the approval signed by site3, the job succeeds with
    the output [1, 34], and the result reaches site1 carrying that approval."""
    scenario, site2 = world.scenario, world.scenario.site2
    party1 = scenario.site1.party
    with JobsClient(scenario.site1.internal_url, party1.user, timeout=60) as client:
        data = reviewed_input(world, "input-approved")
        job_id = client.submit(scenario.job(data=data)).status.job_id
        review = offered(world, client, job_id)
        assert review.held_at == SiteId.parse(site2.id)
        status = client.status(job_id).status
        assert status.state is JobState.RUNNING
        assert (
            status.reason
            == f"awaiting review by {world.site3.party.id} (review {review.review_id})"
        )
        with client_as(world.reviewer, world.site3.internal_url) as api:
            answer = api.post(f"/reviews/{review.review_id}/approve", json={"reason": "fine"})
        assert answer.status_code == 200, answer.text
        done = client.wait(job_id, WAIT)
        assert (done.status.state, done.status.reason) == (JobState.SUCCEEDED, None)
        files = client.download_output(job_id, "result", tmp_path / "out")
        assert json.loads(files[0].read_text()) == [1, 34]
        result = done.status.outputs()["result"]
    queue = site2.services.oversight.reviews
    held = queue.get(review.review_id)
    assert held.state is ReviewState.APPROVED
    assert held.decided_by == f"rita@{world.site3.party.id}"
    approval = queue.approval(held)
    assert approval is not None and approval.statement.site == SiteId.parse(world.site3.id)
    record = scenario.site1.site.services.assets.get(result)
    chain = ReceiptChain.from_metadata(record.asset.metadata)
    approvals = [a for entry in chain.releases for a in entry.approvals]
    assert [a.statement.site for a in approvals] == [SiteId.parse(world.site3.id)]
    assert [a.statement.review_id for a in approvals] == [review.review_id]


def test_a_rejection_at_party3_s_site_fails_the_job_with_its_reason(world: World) -> None:
    """party3's reviewer rejects at site3: the job at site1 fails with the reason, and
    site2 records the rejection by party3."""
    scenario = world.scenario
    with JobsClient(scenario.site1.internal_url, scenario.site1.party.user, timeout=60) as c:
        data = reviewed_input(world, "input-rejected")
        job_id = c.submit(scenario.job(data=data)).status.job_id
        review = offered(world, c, job_id)
        with client_as(world.reviewer, world.site3.internal_url) as api:
            answer = api.post(
                f"/reviews/{review.review_id}/reject", json={"reason": "column 3 names people"}
            )
        assert answer.status_code == 200, answer.text
        done = c.wait(job_id, WAIT)
        assert done.status.state is JobState.FAILED
        assert "column 3 names people" in (done.status.reason or "")
    held = scenario.site2.services.oversight.reviews.get(review.review_id)
    assert (held.state, held.decided_by_party) == (
        ReviewState.REJECTED,
        PartyId.parse(world.site3.party.id),
    )
