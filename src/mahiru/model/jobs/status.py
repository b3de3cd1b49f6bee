"""Step and job status values, and the only ways they change (`advance_step`, `advance_job`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mahiru.errors import Conflict, InvalidInput
from mahiru.model.fields import check_fields, integer, optional_text, optional_timestamp, timestamp
from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId
from mahiru.model.jobs.checks import (
    aware,
    check_job_id,
    check_plan,
    check_reason,
    check_step_of,
    check_version,
    enum_field,
    iso,
    results_field,
    site_field,
    step_results,
)
from mahiru.model.jobs.states import (
    LOG_TAIL_CHARS,
    STARTED_STEP_STATES,
    JobState,
    StepState,
    check_transition,
)
from mahiru.model.jobs.waiting import Waiting
from mahiru.model.people import Person
from mahiru.model.serialization import job_from_dict, job_to_dict, plan_from_dict, plan_to_dict
from mahiru.model.workflow import Job, Plan, check_name

# --- status values --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepStatus:
    """The state of one step of one job, at the site `site` that runs it.

    `submitted_at` is when the step became known here (job planned or steps
    handed over), `started_at` when it left `waiting` to do work, and
    `finished_at` when it reached a final state. `results` maps each output to
    its result id once the step is done. `version` goes up by one with every
    change, so a copy can tell which of two statuses is newer. `wait` says
    why an unfinished step does not move on, where the site that knows said
    so; it is not stored with the status, and does not change its version.
    """

    job_id: JobId
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
    wait: Waiting | None = None

    def __hash__(self) -> int:
        return hash((self.job_id, self.step, self.site, self.state, self.version))

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        check_name(self.step, "step")
        what = f"status of step {self.step!r} of job {self.job_id}"
        if not isinstance(self.site, SiteId) or not isinstance(self.state, StepState):
            raise InvalidInput(f"{what}: site must be a SiteId and state a StepState")
        check_version(self.version)
        check_reason(self.reason, self.state)
        for name in ("submitted_at", "updated_at", "started_at", "finished_at"):
            value = getattr(self, name)
            if value is not None:
                aware(value, f"{what}: {name}")
        if (self.finished_at is not None) != self.state.terminal:
            raise InvalidInput(f"{what}: finished_at must be set exactly in a final state")
        if self.state is StepState.WAITING and self.started_at is not None:
            raise InvalidInput(f"{what}: a waiting step has not started")
        if self.state in STARTED_STEP_STATES and self.started_at is None:
            raise InvalidInput(f"{what}: a {self.state.value} step needs started_at")
        if self.results and not self.state.done:
            raise InvalidInput(f"{what}: only a succeeded or reused step has results")
        if self.wait is not None and (not isinstance(self.wait, Waiting) or self.state.terminal):
            raise InvalidInput(f"{what}: only an unfinished step waits, with a Waiting")
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
    def waiting(cls, job_id: JobId, step: str, site: SiteId, now: datetime) -> StepStatus:
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
            "wait": None if self.wait is None else self.wait.to_dict(),
            "submitted_at": self.submitted_at.isoformat(),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "updated_at": self.updated_at.isoformat(),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: object) -> StepStatus:
        """Parse the JSON form strictly: InvalidInput on any missing (but `wait`), unknown
        or bad field."""
        what = "step status"
        # A site of an earlier release sends no `wait`: it says nothing about waiting.
        d = check_fields(data, what, _STEP_STATUS_KEYS - {"wait"}, {"wait"})
        exit_code = None if d["exit_code"] is None else integer(d, "exit_code", what)
        log_tail = d["log_tail"]
        if log_tail is not None and not isinstance(log_tail, str):
            raise InvalidInput(f"{what} field 'log_tail' must be text or null")
        return cls(
            job_id=check_job_id(d["job_id"]),
            step=check_name(d["step"], "step"),
            site=site_field(d, "site", what),
            state=enum_field(StepState, d, "state", what),
            submitted_at=timestamp(d, "submitted_at", what),
            updated_at=timestamp(d, "updated_at", what),
            version=integer(d, "version", what),
            started_at=optional_timestamp(d, "started_at", what),
            finished_at=optional_timestamp(d, "finished_at", what),
            reason=optional_text(d, "reason", what),
            exit_code=exit_code,
            log_tail=log_tail,
            results=results_field(d, "results", what),
            wait=None if d.get("wait") is None else Waiting.from_dict(d["wait"]),
        )


_STEP_STATUS_KEYS = frozenset(StepStatus.__dataclass_fields__)


def check_step_status(job: Job, status: StepStatus) -> None:
    """Raise InvalidInput unless `status` is about a step of `job` with the right result ids."""
    check_step_of(job, status.step)
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
    if started_at is None and new_state in STARTED_STEP_STATES:
        started_at = now
    return replace(
        status,
        state=new_state,
        updated_at=aware(now, "now"),
        version=status.version + 1,
        started_at=started_at,
        finished_at=now if new_state.terminal else None,
        reason=reason,
        exit_code=status.exit_code if exit_code is None else exit_code,
        log_tail=status.log_tail if log_tail is None else log_tail[-LOG_TAIL_CHARS:],
        results=results or {},
        wait=None,  # moved on: whatever it waited for is the next state's to say
    )


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job submitted at `submitter_site`: the job, its plan once made, and its state.

    `started_at` is when its first step started and `finished_at` when it
    reached a final state. The steps' own statuses are separate `StepStatus`
    values. `version` goes up by one with every change. `submitted_by` names
    the person (a user of the submitting party, `name@party`) who submitted
    it; None for jobs stored before jobs recorded it.
    """

    job_id: JobId
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
    submitted_by: str | None = None

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        what = f"status of job {self.job_id}"
        if not isinstance(self.job, Job) or not isinstance(self.state, JobState):
            raise InvalidInput(f"{what}: job must be a Job and state a JobState")
        if self.submitted_by is not None and (
            not isinstance(self.submitted_by, str)
            or Person.parse(self.submitted_by).party != self.submitter
        ):
            raise InvalidInput(
                f"{what}: submitted_by must name a user of {self.submitter},"
                f" not {self.submitted_by!r}"
            )
        check_version(self.version)
        check_reason(self.reason, self.state)
        for name in ("submitted_at", "updated_at", "started_at", "finished_at"):
            value = getattr(self, name)
            if value is not None:
                aware(value, f"{what}: {name}")
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
    def submitted(cls, job_id: JobId, job: Job, submitter_site: SiteId, now: datetime) -> JobStatus:
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
            "submitted_by": self.submitted_by,
            "submitter_site": str(self.submitter_site),
            "job": job_to_dict(self.job),
            "plan": None if self.plan is None else plan_to_dict(self.plan),
            "state": self.state.value,
            "reason": self.reason,
            "outputs": {name: str(rid) for name, rid in self.outputs().items()},
            "submitted_at": self.submitted_at.isoformat(),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
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
            submitter_site=site_field(d, "submitter_site", what),
            state=enum_field(JobState, d, "state", what),
            submitted_at=timestamp(d, "submitted_at", what),
            updated_at=timestamp(d, "updated_at", what),
            version=integer(d, "version", what),
            plan=None if d["plan"] is None else plan_from_dict(d["plan"]),
            started_at=optional_timestamp(d, "started_at", what),
            finished_at=optional_timestamp(d, "finished_at", what),
            reason=optional_text(d, "reason", what),
            submitted_by=optional_text(d, "submitted_by", what),
        )
        if d["submitter"] != str(status.submitter):
            raise InvalidInput(f"{what}: submitter {d['submitter']!r} is not the job's submitter")
        if results_field(d, "outputs", what) != status.outputs():
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
        updated_at=aware(now, "now"),
        version=status.version + 1,
        plan=status.plan if plan is None else plan,
        started_at=started_at,
        finished_at=now if new_state.terminal else None,
        reason=reason,
    )


def noted_job(status: JobStatus, note: str | None, now: datetime) -> JobStatus:
    """The status of a running job with `note` (what it waits for; None: nothing) as its
    reason, its state unchanged; Conflict unless it is running."""
    if status.state is not JobState.RUNNING:
        raise Conflict(
            f"job {status.job_id} is {status.state.value}: only a running job is noted",
            {"job_id": status.job_id},
        )
    check_reason(note, status.state)
    return replace(status, updated_at=aware(now, "now"), version=status.version + 1, reason=note)
