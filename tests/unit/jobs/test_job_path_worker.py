"""The step worker's real loop: a step waiting for another of its job at the same site runs as
soon as that one finished, without sitting out its back-off; a finished step is announced; the
coordinator polls soon only for steps elsewhere; the steps of a job share its policy check."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from tests.support.fake_scenario import Hang, Scenario, minmax

from mahiru.model.assets import AssetKind
from mahiru.model.audit import AuditKind
from mahiru.model.jobs import JobState, StepState
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job
from mahiru.policy.engine import PolicyEngine
from mahiru.services.jobs.worker import StepWorker

DEADLINE = 10.0
#: JobCoordinator's default running_interval.
RUNNING_INTERVAL = 0.1


def _two_steps(scenario: Scenario) -> Job:
    """minmax on the input, then minmax on that, with a compute asset only site2 may read:
    both at site2 (each party's results of its results are its results too)."""
    site1, site2 = scenario.site1, scenario.site2
    compute = site1.add_asset(
        "minmax_two", AssetKind.COMPUTE, scenario.net.programs.compute("minmax_two", minmax)
    )
    site1.add_rule({"type": "MayAccess", "site": str(site2.id), "asset": compute})
    site1.add_rule(
        {"type": "ResultOfComputeIn", "data": "*", "compute": compute, "output": "*",
         "collection": f"asset_collection:{site1.party.namespace}:results"}
    )  # fmt: skip
    for site in (site1, site2):
        results = f"asset_collection:{site.party.namespace}:results"
        site.add_rule(
            {"type": "ResultOfDataIn", "data": results, "compute": "*", "output": "*",
             "collection": results}
        )  # fmt: skip
    scenario.net.replicate()
    steps = [
        {"name": "a", "compute_asset": compute,
         "inputs": {"input0": "input"}, "outputs": {"output0": scenario.output_base}},
        {"name": "b", "compute_asset": compute,
         "inputs": {"input0": "a.output0"}, "outputs": {"output0": scenario.output_base}},
    ]  # fmt: skip
    return job_from_dict(
        {
            "submitter": str(scenario.site1.party.id),
            "workflow": {"inputs": ["input"], "outputs": {"result": "b.output0"}, "steps": steps},
            "inputs": {"input": scenario.input},
        }
    )


def test_a_step_runs_once_the_step_it_reads_from_finished_without_waiting_its_backoff(
    scenario: Scenario,
) -> None:
    """The (fake) clock stands still, so a back-off would never end: b still succeeds."""
    site1, site2 = scenario.site1, scenario.site2
    status = site1.jobs.submissions.submit(_two_steps(scenario), site1.party.user())
    assert status.plan is not None
    assert set(status.plan.assignments.values()) == {site2.id}
    site2.stop()
    site2.start(loops=True)
    site1.follow()  # hands both steps to site2, which wakes its worker
    deadline = time.monotonic() + DEADLINE
    while site2.steps(status.job_id)["b"].state is not StepState.SUCCEEDED:
        assert time.monotonic() < deadline, site2.steps(status.job_id)
        time.sleep(0.01)
    assert site2.steps(status.job_id)["a"].state is StepState.SUCCEEDED


def test_the_worker_says_when_a_step_finished_so_its_job_is_looked_at_at_once(
    scenario: Scenario,
) -> None:
    """`on_step_done` is called once the step has succeeded (the site wakes its coordinator
    with it), not before."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    ports = site2.jobs.ports
    done: list[StepState] = []
    called = threading.Event()

    def step_done() -> None:
        done.append(site2.steps(job_id)["compute"].state)
        called.set()

    worker = StepWorker(
        ports.ledger,
        ports.environment,
        site2.jobs.loops.worker.execution,
        threading.Event(),
        on_step_done=step_done,
    )
    worker.loop.run_round()
    assert called.wait(DEADLINE), "on_step_done was not called"
    worker.stop()
    assert done == [StepState.SUCCEEDED]


def test_the_coordinator_polls_soon_only_while_a_job_runs_steps_elsewhere(
    scenario: Scenario, hang: Hang
) -> None:
    """While a job's step runs at another site that is asked directly (the watch not started,
    or full), the next round comes after the short running interval; once the job is done,
    after the ordinary one (None). test_step_watch.py: watched, no round comes soon."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job("hang"), site1.party.user()).job_id
    coordinator = site1.jobs.loops.coordinator
    coordinator.loop.run_round()  # hands the step over to site2
    steps = site2.run_steps_aside()
    assert hang.started.wait(DEADLINE)
    coordinator.loop.run_round()  # mirrors the step's state: running
    assert site1.job(job_id).state is JobState.RUNNING
    assert coordinator.loop.run_round() == RUNNING_INTERVAL
    hang.release.set()
    steps.join(DEADLINE)
    coordinator.loop.run_round()  # mirrors the step's end
    coordinator.loop.run_round()  # collects the result
    assert site1.job(job_id).state is JobState.SUCCEEDED
    assert coordinator.loop.run_round() is None


def test_the_coordinator_does_not_poll_soon_for_a_job_whose_steps_run_here(
    scenario: Scenario, hang: Hang
) -> None:
    """A running job with its step at the submitter's own site: the worker wakes the loop
    when the step finishes, so the next round comes after the ordinary interval (None)."""
    site1 = scenario.site1
    job = scenario.job("hang", data=scenario.output_base)
    status = site1.jobs.submissions.submit(job, site1.party.user())
    assert status.plan is not None
    assert set(status.plan.assignments.values()) == {site1.id}
    coordinator = site1.jobs.loops.coordinator
    coordinator.loop.run_round()  # hands the step over to this site
    steps = site1.run_steps_aside()
    assert hang.started.wait(DEADLINE)
    assert site1.job(status.job_id).state is JobState.RUNNING
    assert coordinator.loop.run_round() is None
    hang.release.set()
    steps.join(DEADLINE)


def test_the_steps_of_a_job_share_one_check_of_the_job_on_the_same_rules(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both steps at site2 are decided (each audited), but the job as a whole is checked once
    there, not once per step."""
    site1, site2 = scenario.site1, scenario.site2
    checked: list[PolicyEngine] = []
    original = PolicyEngine.check_job

    def counting(self: PolicyEngine, *args: Any, **kwargs: Any) -> Any:
        checked.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PolicyEngine, "check_job", counting)
    job = _two_steps(scenario)
    status = site1.jobs.submissions.submit(job, site1.party.user())
    site1.follow()  # site2 checks the job as it receives the steps
    handed_over = len(checked)
    site2.run_steps()  # a is decided and runs, then b is decided and runs
    steps = site2.steps(status.job_id)
    assert [steps[s].state for s in "ab"] == [StepState.SUCCEEDED] * 2
    assert len(checked) == handed_over + 1
    decided = site2.audited(AuditKind.DECISION, status.job_id)
    assert sorted(e.step for e in decided if e.action == "run step") == ["a", "b"]
