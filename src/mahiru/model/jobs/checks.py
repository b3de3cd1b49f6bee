"""Checks shared by the job values, and the strict parsing of their dict forms."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from mahiru.errors import InvalidIdentifier, InvalidInput
from mahiru.model.fields import text
from mahiru.model.identifiers import JobId, ResultId, SiteId
from mahiru.model.jobs.states import JOB_ID_PATTERN, JobState, S, StepState
from mahiru.model.workflow import Job, Plan, check_name

# --- checks shared by the values below ----------------------------------------------------


def check_job_id(job_id: object) -> JobId:
    """Validate a job id: 1 to 128 letters, digits, '_', '.' or '-'."""
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.fullmatch(job_id):
        raise InvalidInput(
            f"invalid job id {job_id!r}: use 1 to 128 letters, digits, '_', '.' and '-'",
            {"job_id": job_id},
        )
    return JobId(job_id)


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


def check_step_of(job: Job, step: str) -> None:
    if step not in job.workflow.steps:
        raise InvalidInput(f"the job's workflow has no step {step!r}", {"step": step})


def aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{what} must be a datetime with a time zone, got {value!r}")
    return value


def check_reason(value: str | None, state: Enum) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidInput(f"a reason must be non-empty text or None, got {value!r}")
    if state in (JobState.FAILED, StepState.FAILED) and value is None:
        raise InvalidInput("a failure needs a reason")


def check_version(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"version must be a positive integer, got {value!r}")


def step_results(job: Job, step: str) -> dict[str, ResultId]:
    """The result id of each output of `step` (output name -> id), see the reference."""
    check_step_of(job, step)
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


# --- strict dict forms --------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def enum_field(cls: type[S], data: Mapping[str, Any], key: str, what: str) -> S:
    value = data[key]
    for member in cls:
        if member.value == value:
            return member
    names = ", ".join(m.value for m in cls)
    raise InvalidInput(f"{what} field {key!r} must be one of {names}, got {value!r}")


def site_field(data: Mapping[str, Any], key: str, what: str) -> SiteId:
    try:
        return SiteId.parse(text(data, key, what))
    except InvalidIdentifier as error:
        raise InvalidInput(f"{what} field {key!r}: {error.message}") from None


def results_field(data: Mapping[str, Any], key: str, what: str) -> dict[str, ResultId]:
    value = data[key]
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} field {key!r} must map output names to result ids")
    try:
        return {check_name(k, "output"): ResultId.parse(v) for k, v in value.items()}
    except InvalidInput as error:
        raise InvalidInput(f"{what} field {key!r}: {error.message}") from None
