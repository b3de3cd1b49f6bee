"""Jobs, steps and result provenance in the database, on SQLite and PostgreSQL.

See docs/reference.md, "Execution".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.db import OpenDb

from mahiru.errors import Conflict, InvalidInput, NotFound
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.jobs import (
    LOG_PRUNED,
    JobState,
    ResultProvenance,
    StepAssignment,
    StepState,
    StepStatus,
    advance_step,
    step_provenance,
    step_results,
)
from mahiru.model.workflow import Job, Plan, StepOutputRef, Workflow, WorkflowStep
from mahiru.storage import JobRepository, ProvenanceRepository

pytestmark = pytest.mark.integration


HOME = SiteId("p1.example.org", "home")
SITE2 = SiteId("p2.example.org", "site2")
DATA = AssetId("p1.example.org", "data", HOME)
SCRIPT = AssetId("p2.example.org", "script", SITE2)
P1 = PartyId("p1.example.org", "p1")
P2 = PartyId("p2.example.org", "p2")
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

W, F, R, S = StepState.WAITING, StepState.FETCHING, StepState.RUNNING, StepState.STORING
DONE = StepState.SUCCEEDED
TO_SUCCESS = [F, R, S, DONE]


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def repo(open_db: OpenDb) -> JobRepository:
    """A job repository on a freshly migrated database."""
    return JobRepository(open_db())


def chain(submitter: PartyId = P1, length: int = 2) -> Job:
    """input -> s0 -> s1 -> ... -> result."""
    steps = [WorkflowStep("s0", SCRIPT, {"x": "input"}, {"out": None})]
    steps += [
        WorkflowStep(f"s{i}", SCRIPT, {"x": StepOutputRef(f"s{i - 1}", "out")}, {"out": None})
        for i in range(1, length)
    ]
    outputs = {"result": StepOutputRef(f"s{length - 1}", "out")}
    return Job(submitter, Workflow(["input"], outputs, steps), {"input": DATA})


def parallel(width: int) -> Job:
    """`width` independent steps on the same input."""
    steps = [WorkflowStep(f"p{i}", SCRIPT, {"x": "input"}, {"out": None}) for i in range(width)]
    outputs = {f"r{i}": StepOutputRef(f"p{i}", "out") for i in range(width)}
    return Job(P1, Workflow(["input"], outputs, steps), {"input": DATA})


def plan_for(job: Job, site: SiteId = HOME, **sites: SiteId) -> Plan:
    return Plan({name: sites.get(name, site) for name in job.workflow.steps})


def run_to_success(repo: JobRepository, job_id: str, step: str, start: int = 1) -> StepStatus:
    status = repo.step_status(job_id, step)
    for offset, state in enumerate(TO_SUCCESS):
        status = repo.set_step_state(job_id, step, state, at(start + offset))
    return status


# --- jobs submitted here --------------------------------------------------------------------


def test_a_planned_job_is_stored_with_a_waiting_row_per_step(repo: JobRepository) -> None:
    """create_job with a plan gives a planned job and its steps, at the plan's sites."""
    job = chain()
    plan = plan_for(job, s1=SITE2)
    created = repo.create_job("j1", job, plan, HOME, at(0))
    assert created.state is JobState.PLANNED
    assert repo.get_job("j1") == created
    assert [(s.step, s.site, s.state, s.version) for s in repo.steps_of("j1")] == [
        ("s0", HOME, W, 1),
        ("s1", SITE2, W, 1),
    ]
    assert repo.step_status("j1", "s0").submitted_at == at(0)


def test_creating_a_job_again_is_idempotent_unless_it_differs(repo: JobRepository) -> None:
    """The same job under the same id changes nothing; another job under it is a Conflict."""
    job = chain()
    first = repo.create_job("j1", job, plan_for(job), HOME, at(0))
    assert repo.create_job("j1", job, plan_for(job), HOME, at(5)) == first
    with pytest.raises(Conflict, match="j1"):
        repo.create_job("j1", chain(length=3), None, HOME, at(5))
    with pytest.raises(Conflict, match="j1"):
        repo.create_job("j1", job, plan_for(job, SITE2), HOME, at(5))
    assert repo.get_job("j1") == first


def test_a_submitted_job_is_planned_later_or_fails_with_a_reason(repo: JobRepository) -> None:
    """Without a plan a job waits in `submitted`; set_plan creates its steps."""
    job = chain()
    assert repo.create_job("j1", job, None, HOME, at(0)).state is JobState.SUBMITTED
    assert repo.steps_of("j1") == []
    planned = repo.set_plan("j1", plan_for(job), at(1))
    assert planned.state is JobState.PLANNED
    assert planned.plan == plan_for(job)
    assert [s.state for s in repo.steps_of("j1")] == [W, W]
    repo.create_job("j2", job, None, HOME, at(2))
    failed = repo.set_job_state("j2", JobState.FAILED, "no site may run s0", at(3))
    assert (failed.state, failed.reason, failed.finished_at) == (
        JobState.FAILED,
        "no site may run s0",
        at(3),
    )


def test_jobs_are_listed_by_submitter_and_state(repo: JobRepository) -> None:
    """list_jobs filters by the submitting party and by states, oldest first."""
    repo.create_job("a", chain(P1), plan_for(chain(P1)), HOME, at(0))
    repo.create_job("b", chain(P2), None, HOME, at(1))
    repo.create_job("c", chain(P1), None, HOME, at(2))
    repo.set_job_state("c", JobState.CANCELLED, "changed my mind", at(3))
    assert [j.job_id for j in repo.list_jobs()] == ["a", "b", "c"]
    assert [j.job_id for j in repo.list_jobs(submitter=P1)] == ["a", "c"]
    unfinished = [JobState.SUBMITTED, JobState.PLANNED, JobState.RUNNING]
    assert [j.job_id for j in repo.list_jobs(states=unfinished)] == ["a", "b"]
    assert [j.job_id for j in repo.list_jobs(submitter=P2, states=[JobState.PLANNED])] == []


def test_unknown_jobs_and_steps_are_not_found(repo: JobRepository) -> None:
    """Every lookup and update names what it could not find."""
    repo.create_job("j1", chain(), plan_for(chain()), HOME, at(0))
    with pytest.raises(NotFound, match="nope"):
        repo.get_job("nope")
    with pytest.raises(NotFound, match="nope"):
        repo.steps_of("nope")
    with pytest.raises(NotFound, match="'zz'"):
        repo.step_status("j1", "zz")
    with pytest.raises(NotFound, match="'zz'"):
        repo.set_step_state("j1", "zz", F, at(1))
    with pytest.raises(NotFound, match="nope"):
        repo.set_job_state("nope", JobState.CANCELLED, None, at(1))
    with pytest.raises(NotFound, match="nope"):
        repo.cancel_steps("nope", "stop", at(1))
    with pytest.raises(NotFound, match="nope"):
        repo.assignment("nope")


def test_refused_transitions_change_nothing(repo: JobRepository) -> None:
    """A Conflict or InvalidInput leaves the job and its steps exactly as they were."""
    job = chain()
    repo.create_job("j1", job, plan_for(job), HOME, at(0))
    before_job, before_steps = repo.get_job("j1"), repo.steps_of("j1")
    with pytest.raises(Conflict, match="from planned to succeeded"):
        repo.set_job_state("j1", JobState.SUCCEEDED, None, at(1))
    with pytest.raises(Conflict, match="from waiting to running"):
        repo.set_step_state("j1", "s0", R, at(1))
    with pytest.raises(InvalidInput, match="reason"):
        repo.set_step_state("j1", "s0", StepState.FAILED, at(1))
    with pytest.raises(InvalidInput, match="result ids"):
        repo.set_step_state(
            "j1", "s0", StepState.REUSED, at(1), results={"out": ResultId("0" * 64)}
        )
    with pytest.raises(Conflict, match="from planned to planned"):
        repo.set_job_state("j1", JobState.PLANNED, None, at(1))
    assert repo.get_job("j1") == before_job
    assert repo.steps_of("j1") == before_steps
    submitted = repo.create_job("j2", job, None, HOME, at(0))
    with pytest.raises(InvalidInput, match="plan"):
        repo.set_job_state("j2", JobState.PLANNED, None, at(1))
    with pytest.raises(InvalidInput, match="unplanned steps"):
        repo.set_plan("j2", Plan({"s0": HOME}), at(1))
    assert repo.get_job("j2") == submitted
    assert repo.steps_of("j2") == []


def test_a_job_follows_its_steps_and_succeeds_once_its_outputs_are_collected(
    repo: JobRepository,
) -> None:
    """The first step start makes the job running; it succeeds only when told, all steps done."""
    job = chain()
    repo.create_job("j1", job, plan_for(job), HOME, at(0))
    repo.set_step_state("j1", "s0", F, at(1))
    running = repo.get_job("j1")
    assert (running.state, running.started_at) == (JobState.RUNNING, at(1))
    for minute, state in enumerate([R, S, DONE], start=2):
        repo.set_step_state("j1", "s0", state, at(minute), exit_code=0)
    with pytest.raises(Conflict, match="s1"):
        repo.set_job_state("j1", JobState.SUCCEEDED, None, at(5))
    last = run_to_success(repo, "j1", "s1", start=6)
    assert dict(last.results) == step_results(job, "s1")
    assert (last.started_at, last.finished_at) == (at(6), at(9))
    assert repo.get_job("j1").state is JobState.RUNNING
    done = repo.set_job_state("j1", JobState.SUCCEEDED, None, at(10))
    assert (done.state, done.started_at, done.finished_at) == (JobState.SUCCEEDED, at(1), at(10))


def test_a_running_job_is_noted_without_changing_state_and_the_note_ends_with_it(
    repo: JobRepository,
) -> None:
    """A note (what the job waits for) keeps the job running, is written only when it
    changes, is refused for a job not running, and is gone once the job succeeds."""
    job = chain(length=1)
    repo.create_job("j1", job, plan_for(job), HOME, at(0))
    with pytest.raises(Conflict, match="only a running job"):
        repo.note_job("j1", "awaiting review", at(1))
    repo.set_step_state("j1", "s0", F, at(1))
    noted = repo.note_job("j1", "awaiting review by p (review r)", at(2))
    assert (noted.state, noted.reason) == (JobState.RUNNING, "awaiting review by p (review r)")
    assert repo.note_job("j1", "awaiting review by p (review r)", at(3)).version == noted.version
    for minute, state in enumerate([R, S, DONE], start=4):
        repo.set_step_state("j1", "s0", state, at(minute), exit_code=0)
    done = repo.set_job_state("j1", JobState.SUCCEEDED, None, at(9))
    assert (done.state, done.reason) == (JobState.SUCCEEDED, None)


def test_a_failing_step_fails_its_job_naming_the_step_but_not_its_reason(
    repo: JobRepository,
) -> None:
    """The job's reason names the failed step; the step's own reason is its output (shown,
    or withheld, with the step by the egress gate), so the job's reason does not copy it."""
    job = chain()
    repo.create_job("j1", job, plan_for(job), HOME, at(0))
    repo.set_step_state("j1", "s0", F, at(1))
    repo.set_step_state("j1", "s0", R, at(2))
    failed = repo.set_step_state(
        "j1", "s0", StepState.FAILED, at(3), reason="exit code 2", exit_code=2, log_tail="boom"
    )
    assert (failed.exit_code, failed.log_tail, failed.finished_at) == (2, "boom", at(3))
    status = repo.get_job("j1")
    assert (status.state, status.reason, status.finished_at) == (
        JobState.FAILED,
        "step s0 failed",
        at(3),
    )
    assert [s.step for s in repo.unfinished_steps()] == ["s1"]
    assert [s.state for s in repo.cancel_steps("j1", "job failed", at(4))] == [StepState.CANCELLED]
    assert repo.get_job("j1").state is JobState.FAILED


def test_the_kept_logs_of_steps_finished_before_a_time_are_replaced_once(
    repo: JobRepository,
) -> None:
    """Logs of steps finished before the time go (each once, the status kept); those of
    steps finished later, and of steps still running, stay."""
    job = parallel(3)
    repo.create_job("j1", job, plan_for(job), HOME, at(0))
    for step, start in (("p0", 1), ("p1", 10)):
        for offset, state in enumerate(TO_SUCCESS):
            repo.set_step_state("j1", step, state, at(start + offset), log_tail=f"{step} said")
    repo.set_step_state("j1", "p2", F, at(1))
    repo.set_step_state("j1", "p2", R, at(2), log_tail="p2 said")
    assert repo.prune_step_logs(at(8)) == 1
    assert repo.prune_step_logs(at(8)) == 0
    kept = {s.step: (s.state, s.log_tail) for s in repo.steps_of("j1")}
    assert kept == {
        "p0": (DONE, LOG_PRUNED),
        "p1": (DONE, "p1 said"),
        "p2": (R, "p2 said"),
    }


def test_cancelling_a_job_cancels_its_unfinished_steps_at_once(repo: JobRepository) -> None:
    """Finished steps keep their state; a finished job cannot be cancelled."""
    job = chain(length=3)
    repo.create_job("j1", job, plan_for(job), HOME, at(0))
    run_to_success(repo, "j1", "s0")
    repo.set_step_state("j1", "s1", F, at(5))
    cancelled = repo.cancel_job("j1", "user asked", at(6))
    assert (cancelled.state, cancelled.reason) == (JobState.CANCELLED, "user asked")
    assert [(s.step, s.state, s.reason) for s in repo.steps_of("j1")] == [
        ("s0", DONE, None),
        ("s1", StepState.CANCELLED, "user asked"),
        ("s2", StepState.CANCELLED, "user asked"),
    ]
    with pytest.raises(Conflict, match="from cancelled to cancelled"):
        repo.cancel_job("j1", "again", at(7))


# --- steps handed over by other sites ------------------------------------------------------


def test_step_assignments_are_recorded_once_and_resent_safely(repo: JobRepository) -> None:
    """An executing site stores the job, plan and its own steps; resending changes nothing."""
    job = chain(length=3)
    plan = plan_for(job, SITE2, s0=HOME)
    handed = StepAssignment("j9", HOME, SITE2, job, plan)
    statuses = repo.upsert_step_assignment(handed, at(0))
    assert [(s.step, s.site, s.state) for s in statuses] == [("s1", SITE2, W), ("s2", SITE2, W)]
    assert repo.assignment("j9") == handed
    repo.set_step_state("j9", "s1", F, at(1))
    again = repo.upsert_step_assignment(handed, at(2))
    assert [s.state for s in again] == [F, W]
    with pytest.raises(Conflict, match="j9"):
        repo.upsert_step_assignment(
            StepAssignment("j9", HOME, SITE2, job, plan_for(job, SITE2)), at(3)
        )
    with pytest.raises(NotFound):
        repo.get_job("j9")
    assert [s.step for s in repo.steps_of("j9")] == ["s1", "s2"]


def test_the_submitters_site_hands_its_own_steps_to_itself(repo: JobRepository) -> None:
    """A step run where it was submitted has one row for both roles."""
    job = chain()
    plan = plan_for(job, s1=SITE2)
    repo.create_job("j1", job, plan, HOME, at(0))
    mine = repo.upsert_step_assignment(StepAssignment("j1", HOME, HOME, job, plan), at(1))
    assert [(s.step, s.submitted_at) for s in mine] == [("s0", at(0))]
    other = chain(length=3)
    with pytest.raises(Conflict, match="j1"):
        repo.upsert_step_assignment(StepAssignment("j1", HOME, HOME, other, plan_for(other)), at(1))
    assert len(repo.steps_of("j1")) == 2


def test_reports_from_the_executing_site_are_mirrored_in_order(repo: JobRepository) -> None:
    """Newer reports may skip states; stale ones are ignored; backwards ones refused."""
    job = chain()
    plan = plan_for(job, s1=SITE2)
    repo.create_job("j1", job, plan, HOME, at(0))
    remote = StepStatus.waiting("j1", "s1", SITE2, at(1))
    reports = [remote]
    for minute, state in enumerate(TO_SUCCESS, start=2):
        reports.append(advance_step(job, reports[-1], state, at(minute)))
    _, fetching, running, _, succeeded = reports
    assert repo.mirror_step_status(running, at(10)) == running
    assert repo.get_job("j1").state is JobState.RUNNING
    assert repo.mirror_step_status(fetching, at(11)) == running
    assert repo.mirror_step_status(succeeded, at(12)) == succeeded
    assert repo.step_status("j1", "s1") == succeeded
    with pytest.raises(Conflict, match="runs at"):
        repo.mirror_step_status(StepStatus.waiting("j1", "s0", SITE2, at(1)), at(13))
    backwards = StepStatus("j1", "s0", HOME, W, at(0), at(20), version=7)
    repo.set_step_state("j1", "s0", F, at(14))
    with pytest.raises(Conflict, match="from fetching to waiting"):
        repo.mirror_step_status(backwards, at(15))


# --- restarts ------------------------------------------------------------------------------


def test_unfinished_steps_are_found_after_reopening_the_database(open_db: OpenDb) -> None:
    """A restarted site finds every step it must resume or fail, and all job data."""
    first = JobRepository(open_db())
    job = chain(length=3)
    plan = plan_for(job, s2=SITE2)
    first.create_job("j1", job, plan, HOME, at(0))
    first.upsert_step_assignment(StepAssignment("j1", HOME, HOME, job, plan), at(0))
    run_to_success(first, "j1", "s0")
    first.set_step_state("j1", "s1", F, at(5))
    first.set_step_state("j1", "s1", R, at(6))
    other = chain(P2)
    first.upsert_step_assignment(
        StepAssignment("x7", SITE2, HOME, other, plan_for(other, SITE2, s0=HOME)), at(7)
    )
    before = first.get_job("j1")

    again = JobRepository(open_db())
    assert again.get_job("j1") == before
    assert [(s.job_id, s.step, s.state) for s in again.unfinished_steps(HOME)] == [
        ("j1", "s1", R),
        ("x7", "s0", W),
    ]
    assert [(s.job_id, s.step) for s in again.unfinished_steps()] == [
        ("j1", "s1"),
        ("j1", "s2"),
        ("x7", "s0"),
    ]
    assert again.assignment("x7").submitter_site == SITE2
    again.set_step_state("j1", "s1", StepState.FAILED, at(8), reason="site restarted mid-run")
    # The job names the failed step; the step's own reason is its output, shown with the step.
    assert again.get_job("j1").reason == "step s1 failed"


# --- provenance ------------------------------------------------------------------------------


def test_result_provenance_round_trips_and_the_first_one_stays(open_db: OpenDb) -> None:
    """A result's provenance survives a restart; a second job making it changes nothing."""
    repo = ProvenanceRepository(open_db())
    job = chain()
    (provenance,) = step_provenance("j1", job, "s1")
    assert repo.add_provenance(provenance, at(0)) == provenance
    same_computation = ResultProvenance(provenance.result, "j2", "s1", "out", chain(P2))
    assert repo.add_provenance(same_computation, at(1)) == provenance
    (first_step,) = step_provenance("j2", chain(P2), "s0")
    repo.add_provenance(first_step, at(2))
    again = ProvenanceRepository(open_db())
    assert again.get_provenance(provenance.result) == provenance
    assert again.get_provenance(first_step.result).submitter == P2
    with pytest.raises(NotFound, match="result:"):
        again.get_provenance(ResultId("0" * 64))


def test_provenance_and_step_success_can_commit_together(open_db: OpenDb) -> None:
    """Repository calls inside one outer transaction commit or roll back as one."""
    database = open_db()
    repo, provenances = JobRepository(database), ProvenanceRepository(database)
    job = chain()
    repo.create_job("j1", job, plan_for(job), HOME, at(0))
    for minute, state in enumerate([F, R, S], start=1):
        repo.set_step_state("j1", "s0", state, at(minute))
    with pytest.raises(RuntimeError), database.transaction():
        repo.set_step_state("j1", "s0", DONE, at(4))
        for provenance in step_provenance("j1", job, "s0"):
            provenances.add_provenance(provenance, at(4))
        raise RuntimeError("crash before commit")
    assert repo.step_status("j1", "s0").state is S
    (provenance,) = step_provenance("j1", job, "s0")
    with pytest.raises(NotFound):
        provenances.get_provenance(provenance.result)


# --- concurrency -----------------------------------------------------------------------------


def in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    """Run `work(i)` in `count` threads started together; return results or exceptions."""
    barrier = threading.Barrier(count)
    outcomes: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = work(index)
        except Exception as error:  # collected for the test to inspect
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_racing_identical_transitions_let_exactly_one_through(repo: JobRepository) -> None:
    """Eight threads start the same step: one succeeds, seven get a Conflict."""
    job = chain()
    repo.create_job("j1", job, plan_for(job), HOME, at(0))
    outcomes = in_threads(8, lambda i: repo.set_step_state("j1", "s0", F, at(1)))
    assert sum(isinstance(o, StepStatus) for o in outcomes) == 1
    assert all(isinstance(o, StepStatus | Conflict) for o in outcomes)
    status = repo.step_status("j1", "s0")
    assert (status.state, status.version) == (F, 2)
    assert repo.get_job("j1").version == 2


def test_concurrent_updates_of_different_steps_lose_nothing(repo: JobRepository) -> None:
    """Six threads run six steps of one job to success at once; every change is kept."""
    job = parallel(6)
    repo.create_job("j1", job, plan_for(job), HOME, at(0))
    outcomes = in_threads(6, lambda i: run_to_success(repo, "j1", f"p{i}"))
    assert [type(o) for o in outcomes] == [StepStatus] * 6
    assert {(s.state, s.version) for s in repo.steps_of("j1")} == {(DONE, 5)}
    status = repo.get_job("j1")
    assert (status.state, status.version, status.started_at) == (JobState.RUNNING, 2, at(1))
    assert repo.set_job_state("j1", JobState.SUCCEEDED, None, at(9)).version == 3


def test_a_cancel_racing_a_running_step_never_makes_an_illegal_transition(
    repo: JobRepository,
) -> None:
    """Whoever comes second is refused, and the step's version counts exactly the changes made."""
    for round_ in range(6):
        job_id = f"j{round_}"
        job = chain()
        repo.create_job(job_id, job, plan_for(job), HOME, at(0))
        made: list[StepState] = []

        def work(index: int, job_id: str = job_id, made: list[StepState] = made) -> object:
            if index == 1:
                return repo.cancel_job(job_id, "stop", at(1))
            for minute, state in enumerate(TO_SUCCESS, start=1):
                repo.set_step_state(job_id, "s0", state, at(minute))
                made.append(state)
            return made

        worker, canceller = in_threads(2, work)
        assert not isinstance(canceller, Exception)
        assert repo.get_job(job_id).state is JobState.CANCELLED
        assert repo.step_status(job_id, "s1").state is StepState.CANCELLED
        step = repo.step_status(job_id, "s0")
        if made == TO_SUCCESS:
            # The step finished before the cancel, which then cancelled only s1.
            assert (step.state, step.version) == (DONE, 5)
        else:
            assert isinstance(worker, Conflict)
            assert (step.state, step.version) == (StepState.CANCELLED, len(made) + 2)
