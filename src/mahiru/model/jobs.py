"""Jobs as they run: states, where step inputs come from, and status values (reference: Execution).

Pure: no I/O and no clock. Every change of state takes the time as `now` and
goes through `advance_job` or `advance_step`, which refuse any transition the
state machines below do not allow (Conflict naming both states):

    job:   submitted -> planned -> running -> succeeded
           submitted | planned | running -> failed | cancelled
    step:  waiting -> fetching -> running -> storing -> succeeded
           waiting -> reused        (every output is stored already: nothing to run)
           waiting | fetching | running | storing -> failed | cancelled

There are no edges back. A site that restarts with a step in `fetching`,
`running` or `storing` redoes that state's work, or fails the step; it never
moves the step backwards. That also orders the reports a submitter's site gets
about a remote step: a report can only move it forward (`can_reach`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from mahiru.errors import Conflict, InvalidIdentifier, InvalidInput
from mahiru.model.fields import (
    check_fields,
    integer,
    optional_text,
    optional_timestamp,
    text,
    timestamp,
)
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.serialization import job_from_dict, job_to_dict, plan_from_dict, plan_to_dict
from mahiru.model.workflow import Job, Plan, StepOutputRef, check_name

#: How much of a step's log is kept and reported: its last characters.
LOG_TAIL_CHARS = 16_384

_JOB_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class JobState(Enum):
    """Where a job is, as seen by the submitter's site."""

    SUBMITTED = "submitted"
    PLANNED = "planned"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the job is finished: no transition leaves this state."""
        return self in TERMINAL_JOB_STATES


class StepState(Enum):
    """Where one step is, at the site that runs it (and as mirrored by the submitter's)."""

    WAITING = "waiting"
    FETCHING = "fetching"
    RUNNING = "running"
    STORING = "storing"
    SUCCEEDED = "succeeded"
    REUSED = "reused"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the step is finished: no transition leaves this state."""
        return self in TERMINAL_STEP_STATES

    @property
    def done(self) -> bool:
        """Whether the step's results exist (it succeeded or reused stored ones)."""
        return self in DONE_STEP_STATES


JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.SUBMITTED: frozenset({JobState.PLANNED, JobState.FAILED, JobState.CANCELLED}),
    JobState.PLANNED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

_STOPPED = frozenset({StepState.FAILED, StepState.CANCELLED})

STEP_TRANSITIONS: Mapping[StepState, frozenset[StepState]] = {
    StepState.WAITING: frozenset({StepState.FETCHING, StepState.REUSED}) | _STOPPED,
    StepState.FETCHING: frozenset({StepState.RUNNING}) | _STOPPED,
    StepState.RUNNING: frozenset({StepState.STORING}) | _STOPPED,
    StepState.STORING: frozenset({StepState.SUCCEEDED}) | _STOPPED,
    StepState.SUCCEEDED: frozenset(),
    StepState.REUSED: frozenset(),
    StepState.FAILED: frozenset(),
    StepState.CANCELLED: frozenset(),
}

TERMINAL_JOB_STATES = frozenset(s for s, nexts in JOB_TRANSITIONS.items() if not nexts)
TERMINAL_STEP_STATES = frozenset(s for s, nexts in STEP_TRANSITIONS.items() if not nexts)
DONE_STEP_STATES = frozenset({StepState.SUCCEEDED, StepState.REUSED})
#: Step states in which the step has begun work (so `started_at` is set).
_STARTED_STEP_STATES = frozenset(
    {StepState.FETCHING, StepState.RUNNING, StepState.STORING, *DONE_STEP_STATES}
)

S = TypeVar("S", JobState, StepState)


def _transitions(state: S) -> frozenset[S]:
    table: Mapping[Any, frozenset[Any]] = (
        JOB_TRANSITIONS if isinstance(state, JobState) else STEP_TRANSITIONS
    )
    return table[state]


def check_transition(old: S, new: S, subject: str = "state") -> None:
    """Raise Conflict (naming both states) unless `old -> new` is an allowed transition."""
    allowed = _transitions(old)
    if new not in allowed:
        options = ", ".join(sorted(s.value for s in allowed)) or "none: it is final"
        raise Conflict(
            f"{subject} cannot go from {old.value} to {new.value} (allowed from"
            f" {old.value}: {options})",
            {"from": old.value, "to": new.value, "allowed": sorted(s.value for s in allowed)},
        )


def can_reach(old: S, new: S) -> bool:
    """Whether `new` follows `old` by one or more allowed transitions."""
    frontier = list(_transitions(old))
    seen = set(frontier)
    while frontier:
        state = frontier.pop()
        if state == new:
            return True
        for following in _transitions(state) - seen:
            seen.add(following)
            frontier.append(following)
    return False


def derive_job_state(step_states: Iterable[StepState]) -> JobState:
    """The job state that its steps' states imply.

    Any failed step fails the job, else any cancelled step cancels it; all
    steps done (none at all included) is `succeeded` (the submitter's site
    still has to collect the outputs before the job really is); all waiting is
    `planned`; anything else is `running`.
    """
    states = set(step_states)
    if StepState.FAILED in states:
        return JobState.FAILED
    if StepState.CANCELLED in states:
        return JobState.CANCELLED
    if states <= DONE_STEP_STATES:
        return JobState.SUCCEEDED
    if states == {StepState.WAITING}:
        return JobState.PLANNED
    return JobState.RUNNING


# --- checks shared by the values below ----------------------------------------------------


def check_job_id(job_id: object) -> str:
    """Validate a job id: 1 to 128 letters, digits, '_', '.' or '-'."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise InvalidInput(
            f"invalid job id {job_id!r}: use 1 to 128 letters, digits, '_', '.' and '-'",
            {"job_id": job_id},
        )
    return job_id


def check_plan(job: Job, plan: Plan) -> None:
    """Raise InvalidInput unless `plan` assigns exactly the steps of the job's workflow."""
    steps = set(job.workflow.steps)
    planned = set(plan.assignments)
    if steps != planned:
        problems = []
        if steps - planned:
            problems.append(f"unplanned steps: {', '.join(sorted(steps - planned))}")
        if planned - steps:
            problems.append(f"unknown steps: {', '.join(sorted(planned - steps))}")
        raise InvalidInput(f"plan does not match the workflow: {'; '.join(problems)}")


def _step_of(job: Job, step: str) -> None:
    if step not in job.workflow.steps:
        raise InvalidInput(f"the job's workflow has no step {step!r}", {"step": step})


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{what} must be a datetime with a time zone, got {value!r}")
    return value


def _reason(value: str | None, state: Enum) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidInput(f"a reason must be non-empty text or None, got {value!r}")
    if state in (JobState.FAILED, StepState.FAILED) and value is None:
        raise InvalidInput("a failure needs a reason")


def _version(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"version must be a positive integer, got {value!r}")


def step_results(job: Job, step: str) -> dict[str, ResultId]:
    """The result id of each output of `step` (output name -> id), see the reference."""
    _step_of(job, step)
    return {ref.output: rid for ref, rid in job.result_ids().items() if ref.step == step}


def steps_at(job: Job, plan: Plan, site: SiteId) -> list[str]:
    """The steps the plan puts at `site`, each after its predecessors."""
    return [name for name in job.workflow.topological_order() if plan.assignments.get(name) == site]


def ready_steps(job: Job, states: Mapping[str, StepState]) -> list[str]:
    """Waiting steps whose predecessor steps are all done, each after its predecessors.

    A step missing from `states` counts as waiting.
    """
    unknown = sorted(set(states) - set(job.workflow.steps))
    if unknown:
        raise InvalidInput(f"states given for unknown steps: {', '.join(unknown)}")
    return [
        name
        for name in job.workflow.topological_order()
        if states.get(name, StepState.WAITING) is StepState.WAITING
        and all(states.get(p, StepState.WAITING).done for p in job.workflow.predecessors(name))
    ]


# --- where step inputs come from ----------------------------------------------------------


class InputOrigin(Enum):
    """A step input is a primary asset, or a result of an earlier step of the same job."""

    PRIMARY = "primary"
    RESULT = "result"


@dataclass(frozen=True, slots=True)
class StepInput:
    """One thing a step needs, and the site to fetch it from.

    `item` is what it feeds: the step itself (its compute asset), a step input
    `s.i`, an output base `s.@o`, or (for `workflow_output_sources`) a workflow
    output. A primary asset is a job input, compute asset or output base,
    stored at `site` (job inputs bound to a result of an earlier job are at the
    submitter's site). A result is output `producer` of a step of this job, at
    the site the plan runs that step on.
    """

    item: WorkflowItem
    origin: InputOrigin
    asset: AssetId | ResultId
    site: SiteId
    producer: StepOutputRef | None = None


def _primary(item: WorkflowItem, asset: AssetId | ResultId, submitter_site: SiteId) -> StepInput:
    site = asset.site if isinstance(asset, AssetId) else submitter_site
    return StepInput(item, InputOrigin.PRIMARY, asset, site)


def _result(
    item: WorkflowItem, ref: StepOutputRef, plan: Plan, results: Mapping[StepOutputRef, ResultId]
) -> StepInput:
    site = plan.assignments.get(ref.step)
    if site is None:
        raise InvalidInput(f"the plan assigns no site to step {ref.step!r}", {"step": ref.step})
    return StepInput(item, InputOrigin.RESULT, results[ref], site, ref)


def step_inputs(
    job: Job,
    plan: Plan,
    step: str,
    *,
    submitter_site: SiteId,
    results: Mapping[StepOutputRef, ResultId] | None = None,
) -> list[StepInput]:
    """Everything `step` needs at its site: compute asset, inputs by name, then output bases.

    `results` may pass `job.result_ids()` in, to compute it once for many steps.
    """
    _step_of(job, step)
    definition = job.workflow.steps[step]
    results = job.result_ids() if results is None else results
    needed = [_primary(WorkflowItem(ItemKind.STEP, step), definition.compute_asset, submitter_site)]
    for name, source in definition.inputs.items():
        item = WorkflowItem(ItemKind.STEP_INPUT, step, name)
        if isinstance(source, StepOutputRef):
            needed.append(_result(item, source, plan, results))
        else:
            needed.append(_primary(item, job.inputs[source], submitter_site))
    for output, base in definition.outputs.items():
        if base is not None:
            item = WorkflowItem(ItemKind.OUTPUT_BASE, step, output)
            needed.append(_primary(item, base, submitter_site))
    return needed


def workflow_output_sources(job: Job, plan: Plan) -> list[StepInput]:
    """Where the submitter's site collects each workflow output from, by output name."""
    results = job.result_ids()
    return [
        _result(WorkflowItem(ItemKind.WORKFLOW_OUTPUT, name), ref, plan, results)
        for name, ref in sorted(job.workflow.outputs.items())
    ]


# --- strict dict forms --------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _enum(cls: type[S], data: Mapping[str, Any], key: str, what: str) -> S:
    value = data[key]
    for member in cls:
        if member.value == value:
            return member
    names = ", ".join(m.value for m in cls)
    raise InvalidInput(f"{what} field {key!r} must be one of {names}, got {value!r}")


def _site(data: Mapping[str, Any], key: str, what: str) -> SiteId:
    try:
        return SiteId.parse(text(data, key, what))
    except InvalidIdentifier as error:
        raise InvalidInput(f"{what} field {key!r}: {error.message}") from None


def _results(data: Mapping[str, Any], key: str, what: str) -> dict[str, ResultId]:
    value = data[key]
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} field {key!r} must map output names to result ids")
    try:
        return {check_name(k, "output"): ResultId.parse(v) for k, v in value.items()}
    except InvalidInput as error:
        raise InvalidInput(f"{what} field {key!r}: {error.message}") from None


# --- status values --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepStatus:
    """The state of one step of one job, at the site `site` that runs it.

    `submitted_at` is when the step became known here (job planned or steps
    handed over), `started_at` when it left `waiting` to do work, and
    `finished_at` when it reached a final state. `results` maps each output to
    its result id once the step is done. `version` goes up by one with every
    change, so a copy can tell which of two statuses is newer.
    """

    job_id: str
    step: str
    site: SiteId
    state: StepState
    submitted_at: datetime
    updated_at: datetime
    version: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    exit_code: int | None = None
    log_tail: str | None = None
    results: Mapping[str, ResultId] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.job_id, self.step, self.site, self.state, self.version))

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        check_name(self.step, "step")
        what = f"status of step {self.step!r} of job {self.job_id}"
        if not isinstance(self.site, SiteId) or not isinstance(self.state, StepState):
            raise InvalidInput(f"{what}: site must be a SiteId and state a StepState")
        _version(self.version)
        _reason(self.reason, self.state)
        for name in ("submitted_at", "updated_at", "started_at", "finished_at"):
            value = getattr(self, name)
            if value is not None:
                _aware(value, f"{what}: {name}")
        if (self.finished_at is not None) != self.state.terminal:
            raise InvalidInput(f"{what}: finished_at must be set exactly in a final state")
        if self.state is StepState.WAITING and self.started_at is not None:
            raise InvalidInput(f"{what}: a waiting step has not started")
        if self.state in _STARTED_STEP_STATES and self.started_at is None:
            raise InvalidInput(f"{what}: a {self.state.value} step needs started_at")
        if self.results and not self.state.done:
            raise InvalidInput(f"{what}: only a succeeded or reused step has results")
        if self.exit_code is not None and (
            isinstance(self.exit_code, bool) or not isinstance(self.exit_code, int)
        ):
            raise InvalidInput(f"{what}: exit_code must be an integer, got {self.exit_code!r}")
        if self.log_tail is not None and (
            not isinstance(self.log_tail, str) or len(self.log_tail) > LOG_TAIL_CHARS
        ):
            raise InvalidInput(f"{what}: log_tail must be text of at most {LOG_TAIL_CHARS} chars")
        object.__setattr__(self, "results", dict(sorted(self.results.items())))

    @classmethod
    def waiting(cls, job_id: str, step: str, site: SiteId, now: datetime) -> StepStatus:
        """A step just handed to `site`, waiting for its inputs."""
        return cls(job_id, step, site, StepState.WAITING, now, now)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (every field present, nulls included)."""
        return {
            "job_id": self.job_id,
            "step": self.step,
            "site": str(self.site),
            "state": self.state.value,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "log_tail": self.log_tail,
            "results": {output: str(rid) for output, rid in self.results.items()},
            "submitted_at": self.submitted_at.isoformat(),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "updated_at": self.updated_at.isoformat(),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: object) -> StepStatus:
        """Parse the JSON form strictly: InvalidInput on any missing, unknown or bad field."""
        what = "step status"
        d = check_fields(data, what, _STEP_STATUS_KEYS)
        exit_code = None if d["exit_code"] is None else integer(d, "exit_code", what)
        log_tail = d["log_tail"]
        if log_tail is not None and not isinstance(log_tail, str):
            raise InvalidInput(f"{what} field 'log_tail' must be text or null")
        return cls(
            job_id=check_job_id(d["job_id"]),
            step=check_name(d["step"], "step"),
            site=_site(d, "site", what),
            state=_enum(StepState, d, "state", what),
            submitted_at=timestamp(d, "submitted_at", what),
            updated_at=timestamp(d, "updated_at", what),
            version=integer(d, "version", what),
            started_at=optional_timestamp(d, "started_at", what),
            finished_at=optional_timestamp(d, "finished_at", what),
            reason=optional_text(d, "reason", what),
            exit_code=exit_code,
            log_tail=log_tail,
            results=_results(d, "results", what),
        )


_STEP_STATUS_KEYS = frozenset(StepStatus.__dataclass_fields__)


def check_step_status(job: Job, status: StepStatus) -> None:
    """Raise InvalidInput unless `status` is about a step of `job` with the right result ids."""
    _step_of(job, status.step)
    if status.results and dict(status.results) != step_results(job, status.step):
        raise InvalidInput(
            f"results reported for step {status.step!r} of job {status.job_id} are not the"
            " result ids of its outputs",
            {"step": status.step, "results": {k: str(v) for k, v in status.results.items()}},
        )


def advance_step(
    job: Job,
    status: StepStatus,
    new_state: StepState,
    now: datetime,
    *,
    reason: str | None = None,
    exit_code: int | None = None,
    log_tail: str | None = None,
    results: Mapping[str, ResultId] | None = None,
) -> StepStatus:
    """The status after moving the step to `new_state` at `now`.

    Raises Conflict if the transition is not allowed, InvalidInput for a
    failure without a reason or results that are not the step's result ids.
    `results` may be left out on success: they are the step's result ids.
    `exit_code` and `log_tail` stay as they were unless given; `log_tail` is
    cut to its last LOG_TAIL_CHARS characters.
    """
    check_transition(status.state, new_state, f"step {status.step!r} of job {status.job_id}")
    expected = step_results(job, status.step)
    if new_state.done:
        if results is not None and dict(results) != expected:
            raise InvalidInput(
                f"results for step {status.step!r} are not the result ids of its outputs",
                {"expected": {k: str(v) for k, v in expected.items()}},
            )
        results = expected
    elif results:
        raise InvalidInput(f"step {status.step!r} has results only once it succeeded")
    started_at = status.started_at
    if started_at is None and new_state in _STARTED_STEP_STATES:
        started_at = now
    return replace(
        status,
        state=new_state,
        updated_at=_aware(now, "now"),
        version=status.version + 1,
        started_at=started_at,
        finished_at=now if new_state.terminal else None,
        reason=reason,
        exit_code=status.exit_code if exit_code is None else exit_code,
        log_tail=status.log_tail if log_tail is None else log_tail[-LOG_TAIL_CHARS:],
        results=results or {},
    )


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job submitted at `submitter_site`: the job, its plan once made, and its state.

    `started_at` is when its first step started and `finished_at` when it
    reached a final state. The steps' own statuses are separate `StepStatus`
    values. `version` goes up by one with every change.
    """

    job_id: str
    job: Job
    submitter_site: SiteId
    state: JobState
    submitted_at: datetime
    updated_at: datetime
    version: int = 1
    plan: Plan | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        what = f"status of job {self.job_id}"
        if not isinstance(self.job, Job) or not isinstance(self.state, JobState):
            raise InvalidInput(f"{what}: job must be a Job and state a JobState")
        _version(self.version)
        _reason(self.reason, self.state)
        for name in ("submitted_at", "updated_at", "started_at", "finished_at"):
            value = getattr(self, name)
            if value is not None:
                _aware(value, f"{what}: {name}")
        if self.plan is not None:
            check_plan(self.job, self.plan)
        if self.state is JobState.SUBMITTED and self.plan is not None:
            raise InvalidInput(f"{what}: a submitted job is not planned yet")
        planned = (JobState.PLANNED, JobState.RUNNING, JobState.SUCCEEDED)
        if self.state in planned and self.plan is None:
            raise InvalidInput(f"{what}: a {self.state.value} job needs its plan")
        if (self.finished_at is not None) != self.state.terminal:
            raise InvalidInput(f"{what}: finished_at must be set exactly in a final state")
        if self.state in (JobState.SUBMITTED, JobState.PLANNED) and self.started_at is not None:
            raise InvalidInput(f"{what}: a {self.state.value} job has not started")
        if self.state in (JobState.RUNNING, JobState.SUCCEEDED) and self.started_at is None:
            raise InvalidInput(f"{what}: a {self.state.value} job needs started_at")

    @classmethod
    def submitted(cls, job_id: str, job: Job, submitter_site: SiteId, now: datetime) -> JobStatus:
        """A job just submitted at `submitter_site`, not planned yet."""
        return cls(job_id, job, submitter_site, JobState.SUBMITTED, now, now)

    @property
    def submitter(self) -> PartyId:
        """The party that submitted the job."""
        return self.job.submitter

    def outputs(self) -> dict[str, ResultId]:
        """The result id of each workflow output, by output name."""
        results = self.job.result_ids()
        return {name: results[ref] for name, ref in sorted(self.job.workflow.outputs.items())}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (every field present, nulls included; `outputs` for convenience)."""
        return {
            "job_id": self.job_id,
            "submitter": str(self.submitter),
            "submitter_site": str(self.submitter_site),
            "job": job_to_dict(self.job),
            "plan": None if self.plan is None else plan_to_dict(self.plan),
            "state": self.state.value,
            "reason": self.reason,
            "outputs": {name: str(rid) for name, rid in self.outputs().items()},
            "submitted_at": self.submitted_at.isoformat(),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "updated_at": self.updated_at.isoformat(),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: object) -> JobStatus:
        """Parse the JSON form strictly; `submitter` and `outputs` must match the job."""
        what = "job status"
        d = check_fields(data, what, _JOB_STATUS_KEYS)
        status = cls(
            job_id=check_job_id(d["job_id"]),
            job=job_from_dict(d["job"]),
            submitter_site=_site(d, "submitter_site", what),
            state=_enum(JobState, d, "state", what),
            submitted_at=timestamp(d, "submitted_at", what),
            updated_at=timestamp(d, "updated_at", what),
            version=integer(d, "version", what),
            plan=None if d["plan"] is None else plan_from_dict(d["plan"]),
            started_at=optional_timestamp(d, "started_at", what),
            finished_at=optional_timestamp(d, "finished_at", what),
            reason=optional_text(d, "reason", what),
        )
        if d["submitter"] != str(status.submitter):
            raise InvalidInput(f"{what}: submitter {d['submitter']!r} is not the job's submitter")
        if _results(d, "outputs", what) != status.outputs():
            raise InvalidInput(f"{what}: outputs are not the result ids of the job's outputs")
        return status


_JOB_STATUS_KEYS = frozenset(JobStatus.__dataclass_fields__) | {"submitter", "outputs"}


def advance_job(
    status: JobStatus,
    new_state: JobState,
    now: datetime,
    reason: str | None = None,
    *,
    plan: Plan | None = None,
) -> JobStatus:
    """The status after moving the job to `new_state` at `now`.

    Raises Conflict if the transition is not allowed, InvalidInput for a
    failure without a reason, or unless a plan is given exactly when the job
    becomes planned.
    """
    check_transition(status.state, new_state, f"job {status.job_id}")
    if (plan is not None) != (new_state is JobState.PLANNED):
        raise InvalidInput(f"job {status.job_id}: a plan is given exactly when it is planned")
    started_at = status.started_at
    if started_at is None and new_state is JobState.RUNNING:
        started_at = now
    return replace(
        status,
        state=new_state,
        updated_at=_aware(now, "now"),
        version=status.version + 1,
        plan=status.plan if plan is None else plan,
        started_at=started_at,
        finished_at=now if new_state.terminal else None,
        reason=reason,
    )


# --- hand-over and provenance ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepAssignment:
    """What the submitter's site hands to `site`: every step the plan puts there.

    The job and the whole plan come along, so that `site` can check each step
    against its own policy and knows where each input comes from.
    """

    job_id: str
    submitter_site: SiteId
    site: SiteId
    job: Job
    plan: Plan

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        check_plan(self.job, self.plan)
        if not self.steps:
            raise InvalidInput(
                f"job {self.job_id}: the plan runs no step at {self.site}",
                {"job_id": self.job_id, "site": str(self.site)},
            )

    @property
    def steps(self) -> list[str]:
        """The steps assigned to `site`, each after its predecessors."""
        return steps_at(self.job, self.plan, self.site)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "job_id": self.job_id,
            "submitter_site": str(self.submitter_site),
            "site": str(self.site),
            "job": job_to_dict(self.job),
            "plan": plan_to_dict(self.plan),
        }

    @classmethod
    def from_dict(cls, data: object) -> StepAssignment:
        """Parse the JSON form strictly."""
        what = "step assignment"
        d = check_fields(data, what, {"job_id", "submitter_site", "site", "job", "plan"})
        return cls(
            check_job_id(d["job_id"]),
            _site(d, "submitter_site", what),
            _site(d, "site", what),
            job_from_dict(d["job"]),
            plan_from_dict(d["plan"]),
        )


@dataclass(frozen=True, slots=True)
class ResultProvenance:
    """How a result was made: output `output` of step `step` of job `job_id`.

    It carries the whole job, so the site serving the result can recompute
    the result's permissions later (reference: Policy semantics). Construction checks that
    `result` is that output's result id.
    """

    result: ResultId
    job_id: str
    step: str
    output: str
    job: Job

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        expected = step_results(self.job, self.step).get(self.output)
        if expected is None:
            raise InvalidInput(
                f"step {self.step!r} of job {self.job_id} has no output {self.output!r}"
            )
        if expected != self.result:
            raise InvalidInput(
                f"{self.result} is not the result id of {self.step}.{self.output} in job"
                f" {self.job_id} ({expected})",
                {"result": str(self.result), "expected": str(expected)},
            )

    @property
    def submitter(self) -> PartyId:
        """The party that submitted the job."""
        return self.job.submitter

    @property
    def ref(self) -> StepOutputRef:
        """The step output this result is."""
        return StepOutputRef(self.step, self.output)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "result": str(self.result),
            "job_id": self.job_id,
            "submitter": str(self.submitter),
            "step": self.step,
            "output": self.output,
            "job": job_to_dict(self.job),
        }

    @classmethod
    def from_dict(cls, data: object) -> ResultProvenance:
        """Parse the JSON form strictly; `submitter` must be the job's."""
        what = "result provenance"
        d = check_fields(data, what, {"result", "job_id", "submitter", "step", "output", "job"})
        try:
            result = ResultId.parse(text(d, "result", what))
        except InvalidIdentifier as error:
            raise InvalidInput(f"{what} field 'result': {error.message}") from None
        provenance = cls(
            result,
            check_job_id(d["job_id"]),
            check_name(d["step"], "step"),
            check_name(d["output"], "output"),
            job_from_dict(d["job"]),
        )
        if d["submitter"] != str(provenance.submitter):
            raise InvalidInput(f"{what}: submitter {d['submitter']!r} is not the job's submitter")
        return provenance


def step_provenance(job_id: str, job: Job, step: str) -> list[ResultProvenance]:
    """The provenance of each output of `step`, by output name."""
    return [
        ResultProvenance(rid, job_id, step, output, job)
        for output, rid in sorted(step_results(job, step).items())
    ]
