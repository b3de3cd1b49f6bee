"""Cancellation, restarts and unavailable peers and engines on the job path, in process.

Nothing here sleeps to be correct: the clock is fake, blocked steps are released by the
test, and waits on other threads have deadlines that only a broken test reaches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.support.fake_scenario import Hang, Scenario
from tests.support.fake_sites import PEER_RETRY_DEADLINE

from mahiru.model.jobs import JobState, StepState
from mahiru.runtime.steps import LABEL_JOB

#: The longest wait for another thread (reached only when something is broken).
DEADLINE = 10.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition`, looking again often; fail after `DEADLINE` seconds."""
    waited = threading.Event()
    for _ in range(int(DEADLINE / 0.01)):
        if condition():
            return
        waited.wait(0.01)
    raise AssertionError(f"gave up waiting until {what}")


def test_cancelling_a_job_before_hand_over_hands_nothing_over(scenario: Scenario) -> None:
    """Cancelled while planned: the job and its step are cancelled; site2 never hears of it."""
    site1, site2 = scenario.site1, scenario.site2
    user = site1.party.user()
    job_id = site1.jobs.submissions.submit(scenario.job(), user).job_id
    cancelled = site1.jobs.submissions.cancel(job_id, user)
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.reason == f"cancelled by user:{user}"
    scenario.net.drive()
    assert site1.steps(job_id)["compute"].state is StepState.CANCELLED
    assert site2.job_store.unfinished_steps() == []
    assert site2.runtime.steps_run == {}


def test_cancelling_a_job_cancels_its_waiting_step_at_the_site_that_has_it(
    scenario: Scenario,
) -> None:
    """Handed over, not started: site2's step is cancelled by site1's request, and never runs."""
    site1, site2 = scenario.site1, scenario.site2
    user = site1.party.user()
    job_id = site1.jobs.submissions.submit(scenario.job(), user).job_id
    site1.follow()
    site1.jobs.submissions.cancel(job_id, user)
    step = site2.steps(job_id)["compute"]
    assert step.state is StepState.CANCELLED
    assert step.reason == f"cancelled by {site1.id}"
    site2.run_steps()
    scenario.net.drive()
    assert site2.runtime.steps_run == {}
    assert site1.job(job_id).state is JobState.CANCELLED


def test_cancelling_a_job_stops_its_running_step(scenario: Scenario, hang: Hang) -> None:
    """The step's container is stopped, the step cancelled, and nothing of it is left."""
    site1, site2 = scenario.site1, scenario.site2
    user = site1.party.user()
    job_id = site1.jobs.submissions.submit(scenario.job("hang"), user).job_id
    site1.follow()
    worker = site2.run_steps_aside()
    assert hang.started.wait(DEADLINE)
    assert site2.runtime.list_step_containers({LABEL_JOB: job_id})
    site1.jobs.submissions.cancel(job_id, user)
    worker.join(DEADLINE)
    assert not worker.is_alive()
    step = site2.steps(job_id)["compute"]
    assert step.state is StepState.CANCELLED and step.started_at is not None
    assert not site2.runtime.list_step_containers({LABEL_JOB: job_id})
    assert not site2.runtime.output_spaces()
    assert not (site2.root / "work" / job_id).exists()
    assert not [r for r in site2.services.assets.list() if str(r.asset.id).startswith("result:")]
    scenario.net.drive()
    assert site1.job(job_id).state is JobState.CANCELLED


def test_a_site_stopped_mid_step_redoes_the_step_after_its_restart(
    scenario: Scenario, hang: Hang
) -> None:
    """Stopping site2 stops the container but neither fails nor finishes the step: after the
    restart the step runs again from the start, and the job succeeds."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job("hang"), site1.party.user()).job_id
    site1.follow()
    site2.run_steps_aside()
    assert hang.started.wait(DEADLINE)
    site2.stop()  # waits for the step's thread, as the worker waits for its pool
    assert not site2.runtime.list_step_containers()
    site1.follow()  # site2 is unreachable meanwhile: nothing changes at site1
    assert site1.job(job_id).state in (JobState.PLANNED, JobState.RUNNING)
    site2.start()
    assert site2.steps(job_id)["compute"].state is StepState.RUNNING
    hang.release.set()
    scenario.net.drive()
    assert site1.job(job_id).state is JobState.SUCCEEDED
    assert site2.runtime.steps_run == {"compute": 2}


def test_both_sites_restarted_with_their_loops_finish_the_job(
    scenario: Scenario, hang: Hang
) -> None:
    """With the real background loops: site2 restarted mid-step removes the step's container
    and runs the step again, and site1 (restarted too) follows the job to its end."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job("hang"), site1.party.user()).job_id
    for site in (site1, site2):
        site.stop()
        site.start(loops=True)
    wait_until(lambda: site2.runtime.steps_run.get("compute") == 1, "the step runs")
    site2.stop()
    assert not site2.runtime.list_step_containers()
    site2.start(loops=True)
    wait_until(lambda: site2.runtime.steps_run.get("compute") == 2, "the step runs again")
    hang.release.set()
    wait_until(lambda: site1.job(job_id).state.terminal, "the job finishes")
    assert site1.job(job_id).state is JobState.SUCCEEDED


def test_a_hand_over_to_an_unreachable_peer_is_retried_until_it_is_back(
    scenario: Scenario,
) -> None:
    """site2 down: the job stays planned through any number of rounds (and time); back up,
    the next round hands the step over and the job succeeds."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site2.down = True
    for _ in range(3):
        site1.follow()
        scenario.net.clock.advance(3600)
    assert site1.job(job_id).state is JobState.PLANNED
    assert site2.job_store.unfinished_steps() == []
    site2.down = False
    site1.follow()
    assert site2.steps(job_id)["compute"].state is StepState.WAITING
    scenario.net.drive()
    assert site1.job(job_id).state is JobState.SUCCEEDED


def test_a_step_waits_for_an_unavailable_engine_until_the_deadline_then_fails(
    scenario: Scenario,
) -> None:
    """The engine down: the step is retried, not failed, until the retry deadline has passed
    (on the clock); then it fails saying what it waited for, and so does the job."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    site2.runtime.down = True
    site2.run_steps()
    scenario.net.clock.advance(PEER_RETRY_DEADLINE - 1)
    site2.run_steps()
    assert not site2.steps(job_id)["compute"].state.terminal
    scenario.net.clock.advance(2)
    site2.run_steps()
    step = site2.steps(job_id)["compute"]
    assert step.state is StepState.FAILED
    assert step.reason is not None and "gave up after retrying" in step.reason
    assert "engine" in step.reason
    site1.follow()
    assert site1.job(job_id).state is JobState.FAILED


def test_a_step_whose_engine_comes_back_in_time_succeeds(scenario: Scenario) -> None:
    """The engine down for less than the deadline: the step just runs later."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    site2.runtime.down = True
    site2.run_steps()
    scenario.net.clock.advance(PEER_RETRY_DEADLINE / 2)
    site2.runtime.down = False
    scenario.net.drive()
    assert site1.job(job_id).state is JobState.SUCCEEDED


def test_an_unexpected_error_fails_the_step_after_three_attempts(scenario: Scenario) -> None:
    """The engine raises something no one mapped: the worker (its real loop) tries the step
    three times, then fails it naming only the error's type."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    site2.runtime.broken = RuntimeError("engine confused about /secret/path")
    site2.stop()
    site2.start(loops=True)

    def failed() -> bool:
        scenario.net.clock.advance(1)  # the worker's back-off runs on the (fake) clock
        return site2.steps(job_id)["compute"].state.terminal

    wait_until(failed, "the step fails")
    step = site2.steps(job_id)["compute"]
    assert step.state is StepState.FAILED
    assert step.reason == "unexpected error (3 attempts): RuntimeError"
    site1.follow()
    assert site1.job(job_id).state is JobState.FAILED
