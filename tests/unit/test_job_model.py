"""Job and step state machines, step inputs, readiness and status values (reference: Execution)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mahiru.errors import Conflict, InvalidInput
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs import (
    LOG_TAIL_CHARS,
    InputOrigin,
    JobState,
    JobStatus,
    ResultProvenance,
    StepAssignment,
    StepInput,
    StepState,
    StepStatus,
    advance_job,
    advance_step,
    can_reach,
    check_job_id,
    check_plan,
    check_step_status,
    check_transition,
    derive_job_state,
    ready_steps,
    step_inputs,
    step_provenance,
    step_results,
    steps_at,
    workflow_output_sources,
)
from mahiru.model.workflow import Job, Plan, StepOutputRef, Workflow, WorkflowStep

SITE1 = SiteId("p1.example.org", "site1")
SITE2 = SiteId("p2.example.org", "site2")
HOME = SiteId("p3.example.org", "home")
DATA = AssetId("p1.example.org", "data", SITE1)
SCRIPT = AssetId("p2.example.org", "script", SITE2)
BASE = AssetId("p2.example.org", "base", SITE2)
EARLIER = ResultId("ab" * 32)
SUBMITTER = PartyId("p3.example.org", "p3")
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

J, P, R, C = JobState.SUBMITTED, JobState.PLANNED, JobState.RUNNING, JobState.CANCELLED
W, F, RU, ST = StepState.WAITING, StepState.FETCHING, StepState.RUNNING, StepState.STORING


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ref(text: str) -> StepOutputRef:
    step, output = text.split(".")
    return StepOutputRef(step, output)


def chain_job() -> Job:
    """input -> a -> b -> result."""
    workflow = Workflow(
        ["input"],
        {"result": ref("b.out")},
        [
            WorkflowStep("a", SCRIPT, {"x": "input"}, {"out": None}),
            WorkflowStep("b", SCRIPT, {"x": ref("a.out")}, {"out": BASE}),
        ],
    )
    return Job(SUBMITTER, workflow, {"input": DATA})


def diamond_job() -> Job:
    """input -> top -> (left, right) -> bottom -> result, plus an earlier result as input."""
    workflow = Workflow(
        ["input", "old"],
        {"result": ref("bottom.out")},
        [
            WorkflowStep("top", SCRIPT, {"x": "input"}, {"out": None}),
            WorkflowStep("left", SCRIPT, {"x": ref("top.out")}, {"out": None}),
            WorkflowStep("right", SCRIPT, {"x": ref("top.out"), "y": "old"}, {"out": None}),
            WorkflowStep(
                "bottom", SCRIPT, {"l": ref("left.out"), "r": ref("right.out")}, {"out": None}
            ),
        ],
    )
    return Job(SUBMITTER, workflow, {"input": DATA, "old": EARLIER})


CHAIN_PLAN = Plan({"a": SITE1, "b": SITE2})
DIAMOND_PLAN = Plan({"top": SITE1, "left": SITE1, "right": SITE2, "bottom": HOME})


# --- state machines --------------------------------------------------------------------------

JOB_ALLOWED = {
    (J, P),
    (J, JobState.FAILED),
    (J, C),
    (P, R),
    (P, JobState.FAILED),
    (P, C),
    (R, JobState.SUCCEEDED),
    (R, JobState.FAILED),
    (R, C),
}
STEP_ALLOWED = {
    (W, F),
    (W, StepState.REUSED),
    (F, RU),
    (RU, ST),
    (ST, StepState.SUCCEEDED),
} | {(old, new) for old in (W, F, RU, ST) for new in (StepState.FAILED, StepState.CANCELLED)}


@pytest.mark.parametrize("old", list(JobState))
@pytest.mark.parametrize("new", list(JobState))
def test_job_transitions_follow_the_state_machine(old: JobState, new: JobState) -> None:
    """submitted -> planned -> running -> succeeded; failed/cancelled from any unfinished."""
    if (old, new) in JOB_ALLOWED:
        check_transition(old, new)
        return
    with pytest.raises(Conflict) as error:
        check_transition(old, new, "job j1")
    assert f"from {old.value} to {new.value}" in error.value.message
    assert "job j1" in error.value.message
    assert error.value.details["from"] == old.value
    assert error.value.details["to"] == new.value


@pytest.mark.parametrize("old", list(StepState))
@pytest.mark.parametrize("new", list(StepState))
def test_step_transitions_follow_the_state_machine(old: StepState, new: StepState) -> None:
    """waiting -> fetching -> running -> storing -> succeeded, or waiting -> reused."""
    if (old, new) in STEP_ALLOWED:
        check_transition(old, new)
        return
    with pytest.raises(Conflict) as error:
        check_transition(old, new)
    assert old.value in error.value.message
    assert new.value in error.value.message


def test_final_states_are_exactly_those_without_a_way_out() -> None:
    """Terminal states: succeeded, failed, cancelled (and reused for steps)."""
    assert {s for s in JobState if s.terminal} == {JobState.SUCCEEDED, JobState.FAILED, C}
    assert {s for s in StepState if s.terminal} == {
        StepState.SUCCEEDED,
        StepState.REUSED,
        StepState.FAILED,
        StepState.CANCELLED,
    }
    assert {s for s in StepState if s.done} == {StepState.SUCCEEDED, StepState.REUSED}


def test_reachability_only_goes_forward() -> None:
    """Reports may skip states but never move a step backwards."""
    assert can_reach(W, StepState.SUCCEEDED)
    assert can_reach(F, ST)
    assert not can_reach(ST, F)
    assert not can_reach(RU, RU)
    assert not can_reach(StepState.SUCCEEDED, StepState.FAILED)
    assert can_reach(J, JobState.SUCCEEDED)


# --- where inputs come from ------------------------------------------------------------------


def test_step_inputs_of_a_chain_name_primary_assets_and_the_producing_site() -> None:
    """The first step fetches data and script; the second fetches a's output from a's site."""
    job = chain_job()
    results = job.result_ids()
    assert step_inputs(job, CHAIN_PLAN, "a", submitter_site=HOME) == [
        StepInput(WorkflowItem(ItemKind.STEP, "a"), InputOrigin.PRIMARY, SCRIPT, SITE2),
        StepInput(WorkflowItem(ItemKind.STEP_INPUT, "a", "x"), InputOrigin.PRIMARY, DATA, SITE1),
    ]
    assert step_inputs(job, CHAIN_PLAN, "b", submitter_site=HOME) == [
        StepInput(WorkflowItem(ItemKind.STEP, "b"), InputOrigin.PRIMARY, SCRIPT, SITE2),
        StepInput(
            WorkflowItem(ItemKind.STEP_INPUT, "b", "x"),
            InputOrigin.RESULT,
            results[ref("a.out")],
            SITE1,
            ref("a.out"),
        ),
        StepInput(WorkflowItem(ItemKind.OUTPUT_BASE, "b", "out"), InputOrigin.PRIMARY, BASE, SITE2),
    ]


def test_step_inputs_of_a_diamond_come_from_both_branches_sites() -> None:
    """bottom reads left's output at site1 and right's at site2."""
    job = diamond_job()
    results = job.result_ids()
    inputs = step_inputs(job, DIAMOND_PLAN, "bottom", submitter_site=HOME)
    assert [(str(i.item), i.origin, i.asset, i.site, i.producer) for i in inputs] == [
        ("bottom", InputOrigin.PRIMARY, SCRIPT, SITE2, None),
        ("bottom.l", InputOrigin.RESULT, results[ref("left.out")], SITE1, ref("left.out")),
        ("bottom.r", InputOrigin.RESULT, results[ref("right.out")], SITE2, ref("right.out")),
    ]


def test_step_inputs_mix_results_and_primary_inputs_bound_to_earlier_results() -> None:
    """A job input bound to an earlier result is a primary input at the submitter's site."""
    job = diamond_job()
    inputs = step_inputs(job, DIAMOND_PLAN, "right", submitter_site=HOME)
    by_item = {str(i.item): i for i in inputs}
    assert by_item["right.x"].origin is InputOrigin.RESULT
    assert by_item["right.x"].site == SITE1
    assert by_item["right.y"] == StepInput(
        WorkflowItem(ItemKind.STEP_INPUT, "right", "y"), InputOrigin.PRIMARY, EARLIER, HOME
    )


def test_step_inputs_refuse_unknown_steps_and_plans_missing_a_producer() -> None:
    """Asking about a step that is not in the workflow, or a plan without its producer, fails."""
    with pytest.raises(InvalidInput, match="'nope'"):
        step_inputs(chain_job(), CHAIN_PLAN, "nope", submitter_site=HOME)
    with pytest.raises(InvalidInput, match="'a'"):
        step_inputs(chain_job(), Plan({"b": SITE2}), "b", submitter_site=HOME)


def test_workflow_output_sources_name_the_producing_step_and_site() -> None:
    """The submitter's site collects each workflow output from the site of its step."""
    job = diamond_job()
    (source,) = workflow_output_sources(job, DIAMOND_PLAN)
    assert source.item == WorkflowItem(ItemKind.WORKFLOW_OUTPUT, "result")
    assert source.asset == job.result_ids()[ref("bottom.out")]
    assert source.site == HOME
    assert source.producer == ref("bottom.out")


def test_steps_at_a_site_come_in_dependency_order() -> None:
    """A site's steps are listed after their predecessors."""
    assert steps_at(diamond_job(), DIAMOND_PLAN, SITE1) == ["top", "left"]
    assert steps_at(diamond_job(), DIAMOND_PLAN, SITE2) == ["right"]


def test_a_plan_must_cover_exactly_the_workflows_steps() -> None:
    """Missing and unknown steps are both named."""
    check_plan(chain_job(), CHAIN_PLAN)
    with pytest.raises(InvalidInput) as error:
        check_plan(chain_job(), Plan({"a": SITE1, "c": SITE2}))
    assert "unplanned steps: b" in error.value.message
    assert "unknown steps: c" in error.value.message


# --- readiness and the job's state -----------------------------------------------------------


def test_ready_steps_of_a_chain_wait_for_their_predecessor() -> None:
    """b is ready only once a is done (succeeded or reused)."""
    job = chain_job()
    assert ready_steps(job, {}) == ["a"]
    assert ready_steps(job, {"a": RU}) == []
    assert ready_steps(job, {"a": StepState.SUCCEEDED}) == ["b"]
    assert ready_steps(job, {"a": StepState.REUSED, "b": W}) == ["b"]
    assert ready_steps(job, {"a": StepState.SUCCEEDED, "b": F}) == []
    assert ready_steps(job, {"a": StepState.FAILED}) == []


def test_ready_steps_of_a_diamond_need_every_branch() -> None:
    """bottom waits for both left and right."""
    job = diamond_job()
    done = StepState.SUCCEEDED
    assert ready_steps(job, {"top": done}) == ["left", "right"]
    assert ready_steps(job, {"top": done, "left": done, "right": ST}) == []
    assert ready_steps(job, {"top": done, "left": done, "right": done}) == ["bottom"]


def test_ready_steps_refuse_states_of_unknown_steps() -> None:
    """A state for a step the workflow does not have is a mistake, not ignored."""
    with pytest.raises(InvalidInput, match="ghost"):
        ready_steps(chain_job(), {"ghost": W})


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], JobState.SUCCEEDED),
        ([W, W], P),
        ([W, F], R),
        ([StepState.SUCCEEDED, W], R),
        ([StepState.SUCCEEDED, StepState.REUSED], JobState.SUCCEEDED),
        ([StepState.CANCELLED, RU], C),
        ([StepState.FAILED, StepState.CANCELLED, StepState.SUCCEEDED], JobState.FAILED),
    ],
)
def test_job_state_is_derived_from_step_states(states: list[StepState], expected: JobState) -> None:
    """Failure beats cancellation; all done is success; all waiting is planned."""
    assert derive_job_state(states) is expected


# --- advancing statuses ---------------------------------------------------------------------


def test_a_step_records_when_it_started_and_finished_and_its_results() -> None:
    """started_at on leaving waiting, finished_at in a final state, results on success."""
    job = chain_job()
    status = StepStatus.waiting("j1", "b", SITE2, at(0))
    status = advance_step(job, status, F, at(1))
    status = advance_step(job, status, RU, at(2))
    status = advance_step(job, status, ST, at(3), exit_code=0, log_tail="done\n")
    status = advance_step(job, status, StepState.SUCCEEDED, at(4))
    assert (status.submitted_at, status.started_at, status.finished_at) == (at(0), at(1), at(4))
    assert status.updated_at == at(4)
    assert status.version == 5
    assert status.exit_code == 0
    assert status.log_tail == "done\n"
    assert dict(status.results) == {"out": job.result_ids()[ref("b.out")]}
    assert dict(status.results) == step_results(job, "b")


def test_a_reused_step_has_its_results_without_running() -> None:
    """waiting -> reused is final and carries the result ids."""
    job = chain_job()
    status = advance_step(job, StepStatus.waiting("j1", "a", SITE1, at(0)), StepState.REUSED, at(1))
    assert status.state.done
    assert status.started_at == status.finished_at == at(1)
    assert dict(status.results) == step_results(job, "a")


def test_advancing_a_step_refuses_bad_transitions_failures_without_reason_and_wrong_results() -> (
    None
):
    """Conflict for the transition, InvalidInput for the rest; nothing is changed."""
    job = chain_job()
    waiting = StepStatus.waiting("j1", "a", SITE1, at(0))
    with pytest.raises(Conflict, match="from waiting to running"):
        advance_step(job, waiting, RU, at(1))
    with pytest.raises(InvalidInput, match="reason"):
        advance_step(job, waiting, StepState.FAILED, at(1))
    with pytest.raises(InvalidInput, match="result ids"):
        advance_step(job, waiting, StepState.REUSED, at(1), results={"out": EARLIER})
    with pytest.raises(InvalidInput, match="only once it succeeded"):
        advance_step(job, waiting, F, at(1), results={"out": EARLIER})
    with pytest.raises(InvalidInput, match="time zone"):
        advance_step(job, waiting, F, datetime(2024, 6, 1))
    assert waiting.version == 1


def test_a_failed_step_keeps_its_exit_code_reason_and_only_the_tail_of_its_log() -> None:
    """Logs are cut to their last LOG_TAIL_CHARS characters."""
    job = chain_job()
    status = advance_step(job, StepStatus.waiting("j1", "a", SITE1, at(0)), F, at(1))
    status = advance_step(job, status, RU, at(2))
    log = "x" * LOG_TAIL_CHARS + "the end"
    status = advance_step(
        job, status, StepState.FAILED, at(3), reason="exit 3", exit_code=3, log_tail=log
    )
    assert status.reason == "exit 3"
    assert status.exit_code == 3
    assert status.log_tail is not None
    assert len(status.log_tail) == LOG_TAIL_CHARS
    assert status.log_tail.endswith("the end")
    assert status.results == {}


def test_a_job_is_planned_with_its_plan_and_records_start_and_finish() -> None:
    """The plan comes with `planned`; started_at with `running`; finished_at at the end."""
    job = chain_job()
    status = JobStatus.submitted("j1", job, HOME, at(0))
    with pytest.raises(InvalidInput, match="plan"):
        advance_job(status, P, at(1))
    status = advance_job(status, P, at(1), plan=CHAIN_PLAN)
    with pytest.raises(InvalidInput, match="plan"):
        advance_job(status, R, at(2), plan=CHAIN_PLAN)
    status = advance_job(status, R, at(2))
    status = advance_job(status, JobState.SUCCEEDED, at(3))
    assert status.plan == CHAIN_PLAN
    assert (status.submitted_at, status.started_at, status.finished_at) == (at(0), at(2), at(3))
    assert status.version == 4
    assert status.submitter == SUBMITTER
    assert status.outputs() == {"result": job.result_ids()[ref("b.out")]}


def test_a_job_refuses_bad_transitions_and_failing_without_reason() -> None:
    """A finished job stays finished; a failure needs a reason."""
    status = JobStatus.submitted("j1", chain_job(), HOME, at(0))
    with pytest.raises(Conflict, match="from submitted to running"):
        advance_job(status, R, at(1))
    with pytest.raises(InvalidInput, match="reason"):
        advance_job(status, JobState.FAILED, at(1))
    failed = advance_job(status, JobState.FAILED, at(1), "no plan: denied")
    assert failed.finished_at == at(1)
    with pytest.raises(Conflict, match="final"):
        advance_job(failed, C, at(2), "too late")


def test_job_ids_are_short_plain_text() -> None:
    """Ids are 1..128 of letters, digits, '_', '.', '-'."""
    assert check_job_id("job-1.a_b") == "job-1.a_b"
    for bad in ["", "a b", "a/b", "x" * 129, None, 5]:
        with pytest.raises(InvalidInput):
            check_job_id(bad)


# --- values and their dict forms -------------------------------------------------------------


def finished_step() -> StepStatus:
    job = chain_job()
    status = StepStatus.waiting("j1", "a", SITE1, at(0))
    for minute, state in enumerate([F, RU, ST, StepState.SUCCEEDED], start=1):
        status = advance_step(job, status, state, at(minute), exit_code=0, log_tail="ok")
    return status


def running_job() -> JobStatus:
    status = JobStatus.submitted("j1", diamond_job(), HOME, at(0))
    status = advance_job(status, P, at(1), plan=DIAMOND_PLAN)
    return advance_job(status, R, at(2))


def assignment() -> StepAssignment:
    return StepAssignment("j1", HOME, SITE1, diamond_job(), DIAMOND_PLAN)


def provenance() -> ResultProvenance:
    job = chain_job()
    return ResultProvenance(job.result_ids()[ref("b.out")], "j1", "b", "out", job)


VALUES: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
    "step status": (finished_step, StepStatus.from_dict),
    "waiting step status": (
        lambda: StepStatus.waiting("j1", "a", SITE1, at(0)),
        StepStatus.from_dict,
    ),
    "job status": (running_job, JobStatus.from_dict),
    "submitted job status": (
        lambda: JobStatus.submitted("j1", chain_job(), HOME, at(0)),
        JobStatus.from_dict,
    ),
    "step assignment": (assignment, StepAssignment.from_dict),
    "result provenance": (provenance, ResultProvenance.from_dict),
}


@pytest.mark.parametrize("name", list(VALUES))
def test_values_round_trip_through_json(name: str) -> None:
    """to_dict -> JSON text -> from_dict gives back an equal value."""
    make, parse = VALUES[name]
    value = make()
    assert parse(json.loads(json.dumps(value.to_dict()))) == value


@pytest.mark.parametrize("name", list(VALUES))
def test_dict_forms_reject_unknown_and_missing_fields(name: str) -> None:
    """Strict parsing: an extra or a missing field is InvalidInput naming it."""
    make, parse = VALUES[name]
    data = make().to_dict()
    with pytest.raises(InvalidInput, match=r"unknown field.*surprise"):
        parse({**data, "surprise": 1})
    first = next(iter(data))
    with pytest.raises(InvalidInput, match=f"missing {first}"):
        parse({k: v for k, v in data.items() if k != first})
    with pytest.raises(InvalidInput, match="mapping"):
        parse([data])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("state", "done", "must be one of"),
        ("state", "running", "finished_at"),
        ("site", "asset:x:y:z:w", "site"),
        ("version", True, "integer"),
        ("version", 0, "positive"),
        ("exit_code", "0", "integer"),
        ("submitted_at", "2024-06-01T12:00:00", "zone"),
        ("finished_at", "yesterday", "ISO 8601"),
        ("results", {"out": "result:xyz"}, "sha256"),
        ("results", ["result:" + "ab" * 32], "map output names"),
        ("reason", "", "non-empty"),
        ("log_tail", "x" * (LOG_TAIL_CHARS + 1), "log_tail"),
        ("job_id", "a b", "job id"),
        ("step", "a.b", "step"),
    ],
)
def test_step_status_rejects_bad_fields(field: str, value: Any, message: str) -> None:
    """Each wrong field is InvalidInput saying what is wrong."""
    data = finished_step().to_dict()
    data[field] = value
    with pytest.raises(InvalidInput, match=message):
        StepStatus.from_dict(data)


def test_step_status_rejects_inconsistent_timestamps_and_results() -> None:
    """A waiting step has not started; results belong to done steps only."""
    data = StepStatus.waiting("j1", "a", SITE1, at(0)).to_dict()
    with pytest.raises(InvalidInput, match="not started"):
        StepStatus.from_dict({**data, "started_at": at(1).isoformat()})
    with pytest.raises(InvalidInput, match="only a succeeded"):
        StepStatus.from_dict({**data, "results": {"out": str(EARLIER)}})
    fetching = {**data, "state": "fetching"}
    with pytest.raises(InvalidInput, match="needs started_at"):
        StepStatus.from_dict(fetching)


def test_timestamps_in_other_zones_are_kept_as_instants() -> None:
    """Any zone is accepted; the instant is what counts."""
    plus_two = timezone(timedelta(hours=2))
    status = StepStatus.waiting("j1", "a", SITE1, T0.astimezone(plus_two))
    assert StepStatus.from_dict(status.to_dict()).submitted_at == T0


def test_job_status_rejects_a_wrong_submitter_outputs_or_plan() -> None:
    """Derived fields must agree with the job; the plan must fit its workflow."""
    data = running_job().to_dict()
    with pytest.raises(InvalidInput, match="submitter"):
        JobStatus.from_dict({**data, "submitter": "party:x.example.org:x"})
    with pytest.raises(InvalidInput, match="outputs"):
        JobStatus.from_dict({**data, "outputs": {"result": str(EARLIER)}})
    with pytest.raises(InvalidInput, match="unplanned steps"):
        JobStatus.from_dict({**data, "plan": {"top": str(SITE1)}})
    with pytest.raises(InvalidInput, match="needs its plan"):
        JobStatus.from_dict({**data, "plan": None})
    with pytest.raises(InvalidInput, match="not planned yet"):
        JobStatus.from_dict({**data, "state": "submitted", "started_at": None})


def test_a_job_status_dict_shows_the_output_result_ids() -> None:
    """The CLI and the API show where to download each output."""
    status = running_job()
    data = status.to_dict()
    assert data["outputs"] == {"result": str(status.job.result_ids()[ref("bottom.out")])}
    assert data["submitter"] == str(SUBMITTER)
    assert data["plan"]["bottom"] == str(HOME)
    assert data["state"] == "running"


def test_an_assignment_lists_the_steps_at_its_site_and_needs_one() -> None:
    """A site is handed every step the plan puts there, and only if there is one."""
    assert assignment().steps == ["top", "left"]
    with pytest.raises(InvalidInput, match="runs no step"):
        StepAssignment("j1", HOME, SiteId("p9.example.org", "idle"), diamond_job(), DIAMOND_PLAN)
    with pytest.raises(InvalidInput, match="unplanned"):
        StepAssignment("j1", HOME, SITE1, diamond_job(), Plan({"top": SITE1}))


def test_provenance_checks_the_result_id_and_submitter() -> None:
    """A provenance must name the result that step output really has."""
    job = chain_job()
    with pytest.raises(InvalidInput, match="not the result id"):
        ResultProvenance(EARLIER, "j1", "b", "out", job)
    with pytest.raises(InvalidInput, match="no output"):
        ResultProvenance(EARLIER, "j1", "b", "nope", job)
    with pytest.raises(InvalidInput, match="submitter"):
        ResultProvenance.from_dict({**provenance().to_dict(), "submitter": "party:a.b:c"})
    assert provenance().submitter == SUBMITTER
    assert step_provenance("j1", job, "b") == [provenance()]


def test_a_reported_status_must_carry_the_steps_result_ids() -> None:
    """Results that are not the step's own result ids are refused."""
    job = chain_job()
    check_step_status(job, finished_step())
    wrong = StepStatus.from_dict({**finished_step().to_dict(), "results": {"out": str(EARLIER)}})
    with pytest.raises(InvalidInput, match="not the"):
        check_step_status(job, wrong)
    with pytest.raises(InvalidInput, match="no step"):
        check_step_status(job, StepStatus.waiting("j1", "zzz", SITE1, at(0)))
