"""What a job's steps make and what leaves with them, in process: a damaged result is never
reused, a step's log goes only where its outputs may go, and an image the engine has is not
downloaded again."""

from __future__ import annotations

from tests.support.fake_runtime import archive_of
from tests.support.fake_scenario import Scenario
from tests.support.fake_sites import FakeSite

from mahiru.model.assets import AssetKind
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import AssetId, JobId
from mahiru.model.jobs import JobState, StepState
from mahiru.model.serialization import job_from_dict


def _run(scenario: Scenario) -> JobId:
    """Submit the scenario job as party1's user and drive it to its end."""
    site1 = scenario.site1
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    scenario.net.drive()
    assert site1.job(job_id).state is JobState.SUCCEEDED
    return job_id


def test_a_damaged_result_is_computed_again_never_reused(scenario: Scenario) -> None:
    """The result's image damaged at both sites: the same job again runs its step (not
    `reused`) and sets the damaged copies aside."""
    site1, site2 = scenario.site1, scenario.site2
    result = site1.job(_run(scenario)).outputs()["result"]
    for site in (site1, site2):
        digest = site.records.get(result).asset.image_digest
        assert digest is not None
        path = site.blobs.path(digest)
        path.chmod(0o644)
        with path.open("r+b") as file:
            file.seek(path.stat().st_size // 2)
            file.write(b"\x00\xff\x00\xff")
    again = _run(scenario)
    assert site2.steps(again)["compute"].state is StepState.SUCCEEDED
    assert site2.runtime.steps_run == {"compute": 2}
    for site in (site1, site2):
        digest = site.records.get(result).asset.image_digest
        assert digest is not None and site.blobs.verify(digest)


def test_a_compute_image_the_engine_has_is_not_downloaded_again(scenario: Scenario) -> None:
    """site2 asks site1 for the compute asset each time (site1 decides each time), but
    downloads its image only while its engine does not have it."""
    site1, site2 = scenario.site1, scenario.site2
    compute = scenario.computes["minmax"]

    def one_job() -> tuple[int, int]:
        """Run the job, then delete its result at both sites; (decisions, downloads) of the
        compute asset at site1 meanwhile."""
        job_id = _run(scenario)
        result = site1.job(job_id).outputs()["result"]
        for site in (site1, site2):
            site.services.assets.delete(result)
        decisions = [
            e
            for e in site1.audited(AuditKind.DECISION, None)
            if e.asset == compute and e.action == "release to site"
        ]
        sent = [e for e in site1.audited(AuditKind.TRANSFER, None) if e.asset == compute]
        return len(decisions), len(sent)

    assert one_job() == (1, 1)  # the metadata and its image: one decision; one download
    assert one_job() == (2, 1)  # the metadata only: the engine has the image
    site2.runtime.remove_image(site2.images.image(_digest(site1, compute)) or "")
    assert one_job() == (3, 2)  # the engine lost it: downloaded again, one more decision


def _digest(site: FakeSite, compute: str) -> str:
    """The digest of a stored asset's image archive."""
    digest = site.records.get(AssetId.parse(compute)).asset.image_digest
    assert digest is not None
    return digest


def test_a_step_s_log_reaches_the_submitter_only_where_it_may_use_the_outputs(
    scenario: Scenario,
) -> None:
    """Step a fails on party2's private data (party1 may not use its output): its log, reason
    and exit code stay at site2; party1 sees its state and why the rest is withheld."""
    site1, site2 = scenario.site1, scenario.site2
    secret = site2.add_asset("log_secret", AssetKind.DATA, archive_of({"payload": b"[1, 2]"}))
    private = f"asset_collection:{site2.party.namespace}:private"
    results1 = f"asset_collection:{site1.party.namespace}:results"
    results2 = f"asset_collection:{site2.party.namespace}:results"
    for rule in (
        {"type": "MayAccess", "site": str(site2.id), "asset": secret},
        {"type": "MayAccess", "site": str(site2.id), "asset": private},
        {"type": "ResultOfDataIn", "data": secret, "compute": "*", "output": "*",
         "collection": private},
        {"type": "ResultOfDataIn", "data": private, "compute": "*", "output": "*",
         "collection": results2},
    ):  # fmt: skip
        site2.add_rule(rule)
    site1.add_rule(
        {"type": "ResultOfDataIn", "data": results1, "compute": "*", "output": "*",
         "collection": results1}
    )  # fmt: skip
    scenario.net.replicate()

    def step(name: str, compute: str, source: str) -> dict[str, object]:
        return {"name": name, "compute_asset": scenario.computes[compute],
                "inputs": {"input0": source}, "outputs": {"output0": None}}  # fmt: skip

    job = job_from_dict(
        {
            "submitter": str(site1.party.id),
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "b.output0"},
                "steps": [step("a", "fail", "input"), step("b", "minmax", "a.output0")],
            },
            "inputs": {"input": secret},
        }
    )
    user = site1.party.user()
    job_id = site1.jobs.submissions.submit(job, user).job_id
    scenario.net.drive()
    status, views = site1.jobs.submissions.get(job_id, user)
    assert status.state is JobState.FAILED and status.reason == "step a failed"
    a = next(v.status for v in views if v.status.step == "a")
    assert a.state is StepState.FAILED and a.exit_code is None
    assert a.reason is not None and "code 3" not in a.reason
    assert "withheld" in a.reason and "may not use a.output0" in a.reason
    assert a.log_tail is not None and "failing on purpose" not in a.log_tail
    held = site2.job_store.step_status(job_id, "a")  # for site2's administrator
    assert held.log_tail is not None and "failing on purpose" in held.log_tail
    assert held.exit_code == 3 and held.reason is not None and "code 3" in held.reason
