"""A result made from reviewed data, with real sites and containers: held at the data
owner's site until its reviewer decides over HTTPS or `mahiru reviews`, then delivered
with a signed approval `mahiru results verify` shows, or failed for good (reference:
"Reviewed results").

Every test but the first reads its own reviewed copy of the input, under its own rule:
each makes its own results and reviews, whatever ran before (pytest-randomly shuffles).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from tests.support.jobs import Scenario, asset_id, compute_to_data
from tests.support.sites import Network, client_as, network
from tests.support.waiting import wait_until

from mahiru.cli.main import cli
from mahiru.client.http import TlsIdentity
from mahiru.client.jobs import JobsClient, JobView, PeerJobsClient
from mahiru.errors import AwaitingReview, NotFound, ReleaseRejected
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId
from mahiru.model.jobs import JobState
from mahiru.model.people import Person
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki.names import Role
from mahiru.policy.signing import SignedRule, sign_revocation
from mahiru.runtime import DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET
from mahiru.services.images import receive_image
from mahiru.services.site.reviews import ReviewQueue
from mahiru.storage import BlobStore

pytestmark = pytest.mark.e2e

WAIT = 120.0


@dataclass(frozen=True)
class World:
    """The scenario on its network; a reviewer of party2 and the input's archive."""

    net: Network
    scenario: Scenario
    reviewer: TlsIdentity
    input_archive: Path


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
) -> Iterator[World]:
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
        reviewer = net.certs.user(net.parties["party2"], "rita", Role.REVIEWER.value)
        yield World(net, found, reviewer, scenario_archives[INPUT_ASSET])


@pytest.fixture(scope="module")
def scenario(world: World) -> Scenario:
    return world.scenario


def reviewers(scenario: Scenario) -> ReviewQueue:
    """site2's review queue (who may decide is site2's policy's answer)."""
    return scenario.site2.site.services.oversight.reviews


def reviewed_input(
    world: World, name: str, checks: dict[str, Any] | None = None
) -> tuple[str, SignedRule]:
    """A copy of the input at site2 as data `name`, its results usable by party1 as the
    input's are, under a rule of its own that party2 reviews them (with `checks`)."""
    site2, party2 = world.scenario.site2, world.scenario.site2.party
    data = asset_id(site2, name)
    results = f"asset_collection:{party2.namespace}:results"
    rule: dict[str, Any] = {"type": "ReleaseReviewedBy", "asset": data, "reviewer": party2.id}
    review_rule = party2.sign({**rule, "checks": checks} if checks else rule)
    with site2.admin() as admin:
        admin.upload_asset(Asset(AssetId.parse(data), AssetKind.DATA), world.input_archive)
        admin.add_rule(party2.sign({"type": "MayAccess", "site": site2.id, "asset": data}))
        admin.add_rule(
            party2.sign(
                {
                    "type": "ResultOfDataIn",
                    "data": data,
                    "compute": "*",
                    "output": "*",
                    "collection": results,
                }
            )
        )
        admin.add_rule(review_rule)
    world.net.replicate_all()
    return data, review_rule


def held(client: JobsClient, job_id: str) -> JobView:
    """The job's view once it says it awaits a review."""
    return wait_until(
        lambda: (v := client.status(job_id)).status.reason and v, WAIT, "a review to wait for"
    )


def review_of(scenario: Scenario, job_id: str) -> Review:
    """The one review site2 holds for the job."""
    (review,) = [r for r in reviewers(scenario).list(None, limit=500)[0] if r.job_id == job_id]
    return review


def asked(
    identity: TlsIdentity, site_url: str, method: str, route: str, body: Any = None
) -> tuple[int, str]:
    """The status and body of `method /reviews/ROUTE` at the site's internal API as
    `identity`; status 0 if the site refused the certificate during the handshake."""
    path = route if route.startswith("/") else f"/reviews/{route}"
    try:
        with client_as(identity, site_url) as api:
            answer = api.request(method, path, json=body)
    except httpx.TransportError:
        return 0, ""
    return answer.status_code, answer.text


def mahiru(identity: TlsIdentity, site_url: str, *args: str) -> tuple[int, str, str]:
    """`mahiru ARGS` as `identity`, against the site at `site_url`."""
    env = {
        "MAHIRU_SITE_URL": site_url,
        "MAHIRU_CA": str(identity.ca),
        "MAHIRU_CERT": str(identity.cert),
        "MAHIRU_KEY": str(identity.key),
    }
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_a_reviewed_result_is_refused_with_409_until_approved_then_delivered(
    scenario: Scenario, tmp_path: Path
) -> None:
    """The job runs on, noted awaiting party2's review; site1 fetching the result from
    site2 over HTTPS gets 409 AwaitingReview naming reviewer and review; approved, the
    job succeeds and the output reads [1, 34]."""
    party1 = scenario.site1.party
    with JobsClient(scenario.site1.internal_url, party1.user, timeout=60) as client:
        job_id = client.submit(scenario.job()).status.job_id
        view = held(client, job_id)
        assert view.status.state is JobState.RUNNING
        review = review_of(scenario, job_id)
        assert view.status.reason == (
            f"awaiting review by {scenario.party2} (review {review.review_id})"
        )
        assert [(c["check"], c["passed"]) for c in review.checks] == [("max_bytes", True)]
        result = review.result
        peer = PeerJobsClient(scenario.site2.external_url, scenario.site1.identity)
        with peer, pytest.raises(AwaitingReview) as waiting:
            receive_image(BlobStore(tmp_path / "blobs"), peer.fetch_result(result), str(result))
        assert waiting.value.details["review"] == review.review_id
        assert waiting.value.details["reviewer"] == scenario.party2

        person = Person("ann", PartyId.parse(scenario.party2), reviewer=True)
        started = time.monotonic()
        reviewers(scenario).approve(review.review_id, person, person.party, "aggregates only")
        done = client.wait(job_id, WAIT)
        print(f"approval to job end: {time.monotonic() - started:.2f} s")
        assert (done.status.state, done.status.reason) == (JobState.SUCCEEDED, None)
        files = client.download_output(job_id, "result", tmp_path / "out")
        assert json.loads(files[0].read_text()) == [1, 34]


def test_a_rejected_result_fails_the_job_and_revoking_the_rule_releases_nothing(
    world: World, tmp_path: Path
) -> None:
    """party2's reviewer rejects over HTTPS: the job at site1 fails with the reason
    (`mahiru jobs status`), its output and the result stay refused; revoking the rule
    afterwards lets neither that result nor a new job's copy of it out."""
    scenario = world.scenario
    data, rule = reviewed_input(world, "input-rejected")
    site1, site2 = scenario.site1, scenario.site2
    with JobsClient(site1.internal_url, site1.party.user, timeout=60) as client:
        job_id = client.submit(scenario.job(data=data)).status.job_id
        held(client, job_id)
        review = review_of(scenario, job_id)
        with client_as(world.reviewer, site2.internal_url) as api:
            answer = api.post(
                f"/reviews/{review.review_id}/reject", json={"reason": "column 3 names people"}
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["decided_by"] == f"rita@{scenario.party2}"
        done = client.wait(job_id, WAIT)
        assert done.status.state is JobState.FAILED
        assert "column 3 names people" in (done.status.reason or "")
        code, out, err = mahiru(site1.party.user, site1.internal_url, "jobs", "status", job_id)
        assert code == 0, err
        assert "failed" in out and "column 3 names people" in out
        with pytest.raises(NotFound, match="is failed"):
            client.download_output(job_id, "result", tmp_path / "out")
        assert not list((tmp_path / "out").glob("*"))

        def fetched() -> None:
            peer = PeerJobsClient(site2.external_url, site1.identity)
            with peer:
                receive_image(
                    BlobStore(tmp_path / "blobs"), peer.fetch_result(review.result), "result"
                )

        with pytest.raises(ReleaseRejected, match="column 3 names people"):
            fetched()

        with site2.admin() as admin:
            admin.revoke(sign_revocation(rule.rule, site2.party.main_key))
        world.net.replicate_all()
        with pytest.raises(ReleaseRejected, match="column 3 names people"):
            fetched()
        again = client.wait(client.submit(scenario.job(data=data)).status.job_id, WAIT)
        print(f"resubmitted after revoking: {again.status.state} {again.status.reason}")
        assert again.status.state is JobState.FAILED
        assert "column 3 names people" in (again.status.reason or "")
    assert reviewers(scenario).get(review.review_id).state is ReviewState.REJECTED


def test_a_failed_check_is_shown_and_needs_an_override_to_release(
    world: World, tmp_path: Path
) -> None:
    """A result over the rule's `max_bytes` is shown failing it by `mahiru reviews show`;
    approving without --override is refused naming the check; with it the job succeeds."""
    scenario = world.scenario
    data, _ = reviewed_input(world, "input-checked", {"max_bytes": 1})
    site1, site2 = scenario.site1, scenario.site2
    with JobsClient(site1.internal_url, site1.party.user, timeout=60) as client:
        job_id = client.submit(scenario.job(data=data)).status.job_id
        held(client, job_id)
        review_id = review_of(scenario, job_id).review_id
        code, out, err = mahiru(
            world.reviewer, site2.internal_url, "reviews", "show", review_id[:8], "--json"
        )
        assert code == 0, err
        shown = json.loads(out)["review"]
        assert (shown["review_id"], shown["job_id"]) == (review_id, job_id)
        assert [(c["check"], c["passed"]) for c in shown["checks"]] == [("max_bytes", False)]
        code, _, err = mahiru(
            world.reviewer, site2.internal_url, "reviews", "approve", review_id, "--reason", "ok"
        )
        assert code == 1 and "max_bytes failed" in err and "override" in err
        assert client.status(job_id).status.state is JobState.RUNNING
        code, out, err = mahiru(
            world.reviewer,
            site2.internal_url,
            "reviews",
            "approve",
            review_id,
            "--reason",
            "two numbers are small enough",
            "--override",
        )
        assert code == 0, err
        assert out.strip() == f"review {review_id}: approved by rita@{scenario.party2}"
        done = client.wait(job_id, WAIT)
        assert (done.status.state, done.status.reason) == (JobState.SUCCEEDED, None)
        files = client.download_output(job_id, "result", tmp_path / "out")
        assert json.loads(files[0].read_text()) == [1, 34]
    review = reviewers(scenario).get(review_id)
    assert (review.state, review.override) == (ReviewState.APPROVED, True)


def test_the_delivered_result_s_chain_verifies_naming_the_approver_and_a_forgery_does_not(
    world: World, tmp_path: Path
) -> None:
    """Approved with `mahiru reviews approve`, the result's record at site1 (`mahiru assets
    show --json`) verifies offline against `mahiru register show --json`, naming who
    approved; one byte changed in the approval's signature and it does not."""
    scenario = world.scenario
    data, _ = reviewed_input(world, "input-verified")
    site1, site2 = scenario.site1, scenario.site2
    user = site1.party.user
    with JobsClient(site1.internal_url, user, timeout=60) as client:
        job_id = client.submit(scenario.job(data=data)).status.job_id
        held(client, job_id)
        review_id = review_of(scenario, job_id).review_id
        code, _, err = mahiru(
            world.reviewer,
            site2.internal_url,
            "reviews",
            "approve",
            review_id[:6],
            "--reason",
            "aggregates",
        )
        assert code == 0, err
        done = client.wait(job_id, WAIT)
        assert done.status.state is JobState.SUCCEEDED
        result = done.status.outputs()["result"]
    code, out, err = mahiru(user, site1.internal_url, "assets", "show", str(result), "--json")
    assert code == 0, err
    record = tmp_path / "result.json"
    record.write_text(out)
    party = site1.party.client
    registry = CliRunner().invoke(
        cli,
        ["register", "show", "--json"],
        env={
            "MAHIRU_REGISTRY_URL": world.net.registry.url,
            "MAHIRU_CA": str(party.ca),
            "MAHIRU_CERT": str(party.cert),
            "MAHIRU_KEY": str(party.key),
        },
    )
    assert registry.exit_code == 0, registry.stderr
    (tmp_path / "registry.json").write_text(registry.stdout)
    verify = ["results", "verify", str(record), "--registry", str(tmp_path / "registry.json")]

    shown = CliRunner().invoke(cli, verify)
    assert shown.exit_code == 0, shown.output
    assert f"{result} verifies:" in shown.stdout
    assert "1 reviewed release(s), 1 approval(s)" in shown.stdout
    assert f"approved by rita@{scenario.party2} ({scenario.party2})" in shown.stdout
    assert f"review {review_id}" in shown.stdout and "'aggregates'" in shown.stdout

    document = json.loads(out)
    (entry,) = document["metadata"]["releases"]
    (approval,) = entry["approvals"]
    signature = bytearray(base64.b64decode(approval["signature"]))
    signature[len(signature) // 2] ^= 0x01
    approval["signature"] = base64.b64encode(bytes(signature)).decode()
    record.write_text(json.dumps(document))
    forged = CliRunner().invoke(cli, verify)
    assert forged.exit_code == 1, forged.output
    assert f"{result} does NOT verify" in forged.stderr
    print(f"forged approval: {forged.stderr.strip()}")


def test_another_party_s_users_neither_see_nor_decide_party2_s_reviews(
    world: World,
) -> None:
    """party1's user, reviewer and admin, at party2's site and at their own, get 403 or
    404 for party2's pending review on every route, never the review; it stays pending
    until party2's reviewer decides it."""
    scenario = world.scenario
    data, _ = reviewed_input(world, "input-private")
    site1, site2 = scenario.site1, scenario.site2
    party1 = world.net.parties["party1"]
    outsiders = (
        party1.user,
        party1.admin,
        world.net.certs.user(party1, "otto", Role.REVIEWER.value),
    )
    with JobsClient(site1.internal_url, party1.user, timeout=60) as client:
        job_id = client.submit(scenario.job(data=data)).status.job_id
        held(client, job_id)
        review = review_of(scenario, job_id)
        rid = review.review_id
        for identity in outsiders:
            for site in (site2, site1):
                listed = asked(identity, site.internal_url, "GET", "/reviews?limit=500")
                assert listed[0] in (0, 200, 403, 404) and rid not in listed[1]
                for method, route, body in (
                    ("GET", rid, None),
                    ("GET", rid[:8], None),
                    ("GET", f"{rid}/files", None),
                    ("POST", f"{rid}/approve", {"reason": "mine now"}),
                    ("POST", f"{rid}/reject", {"reason": "mine now"}),
                ):
                    status, text = asked(identity, site.internal_url, method, route, body)
                    assert status in (0, 403, 404), (identity.cert.name, site.id, route, text)
                    assert str(review.result) not in text
            code, out, err = mahiru(identity, site2.internal_url, "reviews", "show", rid)
            print(f"{identity.cert.name} at site2: exit {code}: {err.strip()}")
            assert code != 0 and str(review.result) not in out + err
        assert reviewers(scenario).get(rid).state is ReviewState.PENDING
        with client_as(world.reviewer, site2.internal_url) as api:
            answer = api.post(f"/reviews/{rid}/reject", json={"reason": "not for party1"})
        assert answer.status_code == 200, answer.text
        assert client.wait(job_id, WAIT).status.state is JobState.FAILED
