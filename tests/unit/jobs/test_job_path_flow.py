"""The job path across sites, in process: submission, plan, hand-over, execution, collection,
release (reference: Execution). The sites are real services on a fake engine."""

from __future__ import annotations

import json

import pytest
from tests.support.fake_runtime import StepRun
from tests.support.fake_scenario import Scenario, minmax

from mahiru.data_archives import extract_data_files
from mahiru.errors import NotFound, PermissionDenied
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import JobId, ResultId
from mahiru.model.jobs import JobState, StepState
from mahiru.runtime.steps import LABEL_JOB
from mahiru.services.images import receive_image


def test_a_submitted_job_is_planned_where_its_data_may_be_read(scenario: Scenario) -> None:
    """Submission plans at once (the step at site2, which alone may read the input); nothing is
    handed over before the coordinator's round."""
    site1, site2 = scenario.site1, scenario.site2
    status = site1.jobs.submissions.submit(scenario.job(), site1.party.user())
    assert status.state is JobState.PLANNED
    assert status.plan is not None and status.plan.assignments == {"compute": site2.id}
    assert status.submitted_by == str(site1.party.user())
    steps = site1.steps(status.job_id)
    assert {n: (s.site, s.state) for n, s in steps.items()} == {
        "compute": (site2.id, StepState.WAITING)
    }
    with pytest.raises(NotFound):
        site2.job_store.steps_of(status.job_id)


def test_each_state_of_a_job_and_its_step_follows_from_the_round_that_makes_it(
    scenario: Scenario,
) -> None:
    """Hand-over makes the step waiting at site2; running it goes fetching, running, storing,
    succeeded there; the submitter mirrors running (the job too) and then collects."""
    site1, site2 = scenario.site1, scenario.site2
    seen: dict[str, object] = {}

    def watched(run: StepRun) -> int:
        job_id = JobId(run.labels[LABEL_JOB])
        seen["at site2"] = site2.steps(job_id)["compute"].state
        site1.follow()  # the submitter's round while the step runs
        seen["at site1"] = (site1.job(job_id).state, site1.steps(job_id)["compute"].state)
        return minmax(run)

    scenario.add_compute("watched", watched)
    job_id = site1.jobs.submissions.submit(scenario.job("watched"), site1.party.user()).job_id
    site1.follow()
    assert site2.steps(job_id)["compute"].state is StepState.WAITING
    site2.run_steps()
    assert seen == {
        "at site2": StepState.RUNNING,
        "at site1": (JobState.RUNNING, StepState.RUNNING),
    }
    done = site2.steps(job_id)["compute"]
    assert done.state is StepState.SUCCEEDED and done.exit_code == 0
    assert done.started_at is not None and done.finished_at is not None
    site1.follow()
    assert site1.steps(job_id)["compute"].state is StepState.SUCCEEDED
    status = site1.job(job_id)
    assert status.state is JobState.SUCCEEDED and status.reason is None
    # Each transition, in order, as each site's audit log recorded it.
    states = [e.outcome for e in site2.audited(AuditKind.STEP, job_id)]
    assert states == ["waiting", "fetching", "running", "storing", "succeeded"]
    assert [e.outcome for e in site1.audited(AuditKind.JOB, job_id)] == [
        "planned",
        "running",
        "succeeded",
    ]


def test_the_submitter_gets_the_result_collected_from_the_site_that_made_it(
    scenario: Scenario,
) -> None:
    """The workflow output is copied to site1 with its receipt chain, and given to its user."""
    site1 = scenario.site1
    user = site1.party.user()
    job_id = site1.jobs.submissions.submit(scenario.job(), user).job_id
    scenario.net.drive()
    assert site1.job(job_id).state is JobState.SUCCEEDED
    result = site1.jobs.submissions.output(job_id, "result", user)
    assert site1.records.has(result)  # collected: stored at the submitter's site
    image = site1.jobs.egress.to_party(result, user.party, job_id=job_id, user=user)
    archive = site1.root / "result.tar"
    archive.write_bytes(b"".join(image.read()))
    (data,) = extract_data_files(archive, site1.root / "result")
    assert data.name == "data.json" and json.loads(data.read_bytes()) == [1, 34]
    for site in (site1, scenario.site2):  # no work folders left behind
        assert not (site.root / "work" / job_id).exists()
        assert not site.runtime.output_spaces()
        assert not site.runtime.list_step_containers()


def test_results_are_released_to_the_submitter_only(scenario: Scenario) -> None:
    """Another party's users, and a site no rule admits, get nothing; both are told 'not known'."""
    site1, site2, site3 = scenario.site1, scenario.site2, scenario.net.sites["party3"]
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    scenario.net.drive()
    result = site1.job(job_id).outputs()["result"]
    with pytest.raises(PermissionDenied):
        site1.jobs.egress.to_party(result, site3.party.id)
    as_site3 = scenario.net.peer(site3, site2.record())
    blobs = site3.blobs
    with pytest.raises(NotFound) as refused:
        receive_image(blobs, as_site3.fetch_result(result), str(result))
    never_made = ResultId("f" * 64)
    with pytest.raises(NotFound) as unknown:
        receive_image(blobs, as_site3.fetch_result(never_made), str(never_made))
    assert refused.value.message == f"result {result} is not known here"
    assert unknown.value.message == f"result {never_made} is not known here"
    assert list(blobs.digests()) == []
    as_site1 = scenario.net.peer(site1, site2.record())
    assert receive_image(site1.blobs, as_site1.fetch_result(result), str(result)).size > 0


def test_a_job_is_seen_only_by_its_submitter_and_the_party_s_admins(scenario: Scenario) -> None:
    """Another user of the party, and users of other parties, are told the job is not known."""
    site1 = scenario.site1
    user = site1.party.user()
    job_id = site1.jobs.submissions.submit(scenario.job(), user).job_id
    site1.jobs.submissions.get(job_id, site1.party.user("admin", admin=True))
    for stranger in (site1.party.user("other"), scenario.net.sites["party3"].party.user()):
        with pytest.raises(NotFound):
            site1.jobs.submissions.get(job_id, stranger)
        with pytest.raises(NotFound):
            site1.jobs.submissions.cancel(job_id, stranger)
    assert site1.job(job_id).state is JobState.PLANNED


def test_a_step_whose_results_are_stored_is_reused_not_run_again(scenario: Scenario) -> None:
    """The same job again: its step is `reused` and no container runs."""
    site1, site2 = scenario.site1, scenario.site2
    first = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    scenario.net.drive()
    again = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    scenario.net.drive()
    assert site1.job(again).state is JobState.SUCCEEDED
    assert site2.steps(again)["compute"].state is StepState.REUSED
    assert site2.runtime.steps_run == {"compute": 1}
    assert site1.job(first).outputs() == site1.job(again).outputs()


def test_a_step_over_its_output_limit_fails_and_leaves_nothing(scenario: Scenario) -> None:
    """1000 bytes over a 1 MiB limit: the step is stopped, the job fails, no result."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job("big"), site1.party.user()).job_id
    scenario.net.drive()
    step = site2.steps(job_id)["compute"]
    assert step.state is StepState.FAILED
    assert step.reason is not None and "exceeds its limit of 1048576 bytes" in step.reason
    assert site1.job(job_id).state is JobState.FAILED
    assert not any(str(r.asset.id).startswith("result:") for r in site2.services.assets.list())


def test_a_failing_step_fails_the_job_with_its_exit_code_and_log(scenario: Scenario) -> None:
    """Exit code 3: the step fails with it and its log tail, the job with 'step compute failed'."""
    site1 = scenario.site1
    user = site1.party.user()
    job_id = site1.jobs.submissions.submit(scenario.job("fail"), user).job_id
    scenario.net.drive()
    status, views = site1.jobs.submissions.get(job_id, user)
    assert status.state is JobState.FAILED and status.reason == "step compute failed"
    (view,) = views
    step = view.status
    assert step.state is StepState.FAILED and step.exit_code == 3
    assert step.reason is not None and "code 3" in step.reason
    assert step.log_tail is not None and "failing on purpose" in step.log_tail


def test_a_step_over_its_time_limit_fails_with_a_timeout_reason(scenario: Scenario) -> None:
    """61 (simulated) seconds against a limit of 60: killed, and the reason says so."""
    site1 = scenario.site1
    job_id = site1.jobs.submissions.submit(scenario.job("slow"), site1.party.user()).job_id
    scenario.net.drive()
    step = site1.steps(job_id)["compute"]
    assert step.state is StepState.FAILED
    assert step.reason is not None and "longer than its 60 s limit" in step.reason
    assert site1.job(job_id).state is JobState.FAILED
