"""A chain of steps at three sites, in process: each step runs where only it may, reads its
producer's result from the site that made it, and the submitter collects the last one."""

from __future__ import annotations

import json

import pytest
from tests.support.fake_runtime import archive_of
from tests.support.fake_scenario import Scenario, minmax
from tests.support.fake_sites import FakeNetwork, FakeSite

from mahiru.data_archives import extract_data_files
from mahiru.model.assets import AssetKind
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import JobState, StepState
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job


@pytest.fixture
def chain(scenario: Scenario) -> Job:
    """site2 holds `chain_input` (only site2 may read it); site1 `minmax_all` (everyone may
    run it) and `minmax_one` (only site1); site3 `minmax_three` (only site3). Every site's
    results may go to every site, and party1 may use them. The job: a, b, c in a row."""
    net = scenario.net
    sites = [net.sites[name] for name in ("party1", "party2", "party3")]
    site1, site2, site3 = sites
    for site in sites:
        results = _results(site)
        for who in sites:
            site.add_rule({"type": "MayAccess", "site": str(who.id), "asset": results})
        site.add_rule(
            {"type": "MayUse", "party": str(site1.party.id), "asset": results, "conditions": "c"}
        )
        site.add_rule(_result_of("data", results, results))
    data = site2.add_asset("chain_input", AssetKind.DATA, archive_of({"payload": b"[5, 1, 34]"}))
    _readable(site2, data, [site2], "data")
    computes = {}
    for site, name, readers in (
        (site1, "minmax_all", sites),
        (site3, "minmax_three", [site3]),
        (site1, "minmax_one", [site1]),
    ):
        computes[name] = site.add_asset(name, AssetKind.COMPUTE, net.programs.compute(name, minmax))
        _readable(site, computes[name], readers, "compute")
    net.replicate()

    def step(name: str, compute: str, source: str) -> dict[str, object]:
        return {"name": name, "compute_asset": computes[compute],
                "inputs": {"input0": source}, "outputs": {"output0": None}}  # fmt: skip

    return job_from_dict(
        {
            "submitter": str(site1.party.id),
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "c.output0"},
                "steps": [
                    step("a", "minmax_all", "input"),
                    step("b", "minmax_three", "a.output0"),
                    step("c", "minmax_one", "b.output0"),
                ],
            },
            "inputs": {"input": data},
        }
    )


def _results(site: FakeSite) -> str:
    return f"asset_collection:{site.party.namespace}:results"


def _result_of(side: str, asset: str, collection: str) -> dict[str, str]:
    rule = {"data": "*", "compute": "*", "output": "*", "collection": collection, side: asset}
    return {"type": "ResultOfDataIn" if side == "data" else "ResultOfComputeIn", **rule}


def _readable(site: FakeSite, asset: str, readers: list[FakeSite], side: str) -> None:
    for who in readers:
        site.add_rule({"type": "MayAccess", "site": str(who.id), "asset": asset})
    site.add_rule(_result_of(side, asset, _results(site)))


def _result(net: FakeNetwork, job_id: JobId) -> object:
    """The workflow output's data.json, as party1's user downloads it from site1."""
    site1 = net.sites["party1"]
    user = site1.party.user()
    result = site1.jobs.submissions.output(job_id, "result", user)
    image = site1.jobs.egress.to_party(result, user.party, job_id=job_id, user=user)
    archive = site1.root / "result.tar"
    archive.write_bytes(b"".join(image.read()))
    (data,) = extract_data_files(archive, site1.root / "result")
    return json.loads(data.read_bytes())


def test_a_chain_runs_each_step_at_the_one_site_that_may_run_it(
    scenario: Scenario, chain: Job
) -> None:
    """a at site2 (its data), b at site3, c at site1; the result reaches site1: [1, 34]."""
    net = scenario.net
    site1, site2, site3 = (net.sites[name] for name in ("party1", "party2", "party3"))
    status = site1.jobs.submissions.submit(chain, site1.party.user())
    assert status.plan is not None
    assert status.plan.assignments == {"a": site2.id, "b": site3.id, "c": site1.id}
    net.drive()
    assert site1.job(status.job_id).state is JobState.SUCCEEDED
    assert [s.state for s in site1.steps(status.job_id).values()] == [StepState.SUCCEEDED] * 3
    for site, step in ((site2, "a"), (site3, "b"), (site1, "c")):
        assert site.runtime.steps_run == {step: 1}
    assert _result(net, status.job_id) == [1, 34]


def test_a_step_waits_for_the_steps_it_reads_from(scenario: Scenario, chain: Job) -> None:
    """b and c stay waiting, however often their sites look, until a (then b) succeeded."""
    net = scenario.net
    site1, site2, site3 = (net.sites[name] for name in ("party1", "party2", "party3"))
    job_id = site1.jobs.submissions.submit(chain, site1.party.user()).job_id
    site1.follow()
    for _ in range(2):
        site3.run_steps()
        site1.run_steps()
    assert site3.steps(job_id)["b"].state is StepState.WAITING
    assert site1.steps(job_id)["c"].state is StepState.WAITING
    site2.run_steps()
    site1.run_steps()
    assert site1.steps(job_id)["c"].state is StepState.WAITING
    site3.run_steps()
    assert site3.steps(job_id)["b"].state is StepState.SUCCEEDED
    site1.run_steps()
    assert site1.steps(job_id)["c"].state is StepState.SUCCEEDED
    site1.follow()
    assert site1.job(job_id).state is JobState.SUCCEEDED


def test_the_submitter_site_restarted_mid_job_still_finishes_it(
    scenario: Scenario, chain: Job
) -> None:
    """Restarted after a succeeded, site1 hands the steps over again (the receivers ignore
    the repeat), follows the rest and collects the result."""
    net = scenario.net
    site1, site2 = net.sites["party1"], net.sites["party2"]
    job_id = site1.jobs.submissions.submit(chain, site1.party.user()).job_id
    site1.follow()
    site2.run_steps()
    site1.stop()
    site1.start()
    net.drive()
    assert site1.job(job_id).state is JobState.SUCCEEDED
    assert site2.runtime.steps_run == {"a": 1}
    assert _result(net, job_id) == [1, 34]


def _review_chain_input(site2: FakeSite, chain: Job) -> None:
    """party2 has every result derived from chain_input reviewed by itself."""
    rule = {"type": "ReleaseReviewedBy", "asset": str(chain.inputs["input"]),
            "reviewer": str(site2.party.id)}  # fmt: skip
    site2.add_rule(rule)
    site2.network.replicate()


def test_a_step_input_awaiting_review_waits_and_runs_once_approved(
    scenario: Scenario, chain: Job
) -> None:
    """a's result is held at site2 for party3 (site3's owner), asked for as it was stored:
    b waits (no deadline, no failure); approved, b runs, and b's result (derived from
    the same data) is held in turn by site3, which made it, so c waits for that one."""
    net = scenario.net
    site1, site2, site3 = (net.sites[name] for name in ("party1", "party2", "party3"))
    _review_chain_input(site2, chain)
    job_id = site1.jobs.submissions.submit(chain, site1.party.user()).job_id
    net.drive()
    (review,) = site2.reviewers().pending()[0]
    assert review.receiving_party == site3.party.id
    assert site2.steps(job_id)["a"].state is StepState.SUCCEEDED
    assert site3.steps(job_id)["b"].state is StepState.FETCHING
    assert site1.job(job_id).state is JobState.RUNNING
    site2.reviewers().approve(
        review.review_id, site2.party.user(reviewer=True), site2.party.id, "fine"
    )
    net.drive()
    assert site3.steps(job_id)["b"].state is StepState.SUCCEEDED
    assert site1.steps(job_id)["c"].state is StepState.FETCHING  # b's result is held now
    (held,) = site3.reviewers().pending()[0]
    assert (held.receiving_party, held.reviewer) == (site1.party.id, str(site2.party.id))
    assert site1.job(job_id).state is JobState.RUNNING


def test_a_rejected_step_input_fails_the_step_with_the_reason(
    scenario: Scenario, chain: Job
) -> None:
    """party2 rejects the release of a's result to party3: b fails saying why, and so
    does the job."""
    net = scenario.net
    site1, site2, site3 = (net.sites[name] for name in ("party1", "party2", "party3"))
    _review_chain_input(site2, chain)
    job_id = site1.jobs.submissions.submit(chain, site1.party.user()).job_id
    net.drive()
    (review,) = site2.reviewers().pending()[0]
    site2.reviewers().reject(
        review.review_id, site2.party.user(reviewer=True), site2.party.id, "too fine"
    )
    net.drive()
    step = site3.steps(job_id)["b"]
    assert step.state is StepState.FAILED and step.reason is not None
    assert "too fine" in step.reason
    assert site1.job(job_id).state is JobState.FAILED
