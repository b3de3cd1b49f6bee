"""How job, step and assignment values map to and from their database rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from mahiru.errors import Conflict, Internal, NotFound, NotKnown
from mahiru.model.identifiers import JobId, ResultId, SiteId
from mahiru.model.jobs import (
    LOG_PRUNED,
    JobState,
    JobStatus,
    StepAssignment,
    StepState,
    StepStatus,
)
from mahiru.model.serialization import (
    job_from_dict,
    job_to_dict,
    plan_from_dict,
    plan_to_dict,
)
from mahiru.model.workflow import Job
from mahiru.storage.schema import (
    job_assignments,
    job_steps,
    jobs,
)


def select_job(job_id: JobId) -> Select[Any]:
    return select(jobs).where(jobs.c.id == job_id)


def select_step(job_id: JobId, step: str) -> Select[Any]:
    return select(job_steps).where(job_steps.c.job_id == job_id).where(job_steps.c.step == step)


def select_assignment(job_id: JobId) -> Select[Any]:
    return select(job_assignments).where(job_assignments.c.job_id == job_id)


def one(session: Session, statement: Select[Any], what: str) -> Row[Any]:
    row = session.execute(statement).one_or_none()
    if row is None:
        raise Internal(f"{what} vanished inside its transaction")
    return row


def job_not_found(job_id: JobId) -> NotFound:
    return NotKnown("job", job_id)


def step_not_found(job_id: JobId, step: str) -> NotFound:
    return NotFound(
        f"step {step!r} of job {job_id} is not known here", {"job_id": job_id, "step": step}
    )


def job_values(status: JobStatus) -> dict[str, Any]:
    return {
        "id": status.job_id,
        "submitter": str(status.submitter),
        "submitted_by": status.submitted_by,
        "submitter_site": str(status.submitter_site),
        "job": job_to_dict(status.job),
        "plan": None if status.plan is None else plan_to_dict(status.plan),
        "state": status.state.value,
        "reason": status.reason,
        "version": status.version,
        "submitted_at": status.submitted_at,
        "started_at": status.started_at,
        "finished_at": status.finished_at,
        "updated_at": status.updated_at,
    }


def job_from_row(row: Row[Any]) -> JobStatus:
    data = row._mapping
    return JobStatus(
        job_id=data["id"],
        job=job_from_dict(data["job"]),
        submitter_site=SiteId.parse(data["submitter_site"]),
        state=JobState(data["state"]),
        submitted_at=data["submitted_at"],
        updated_at=data["updated_at"],
        version=data["version"],
        plan=None if data["plan"] is None else plan_from_dict(data["plan"]),
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        reason=data["reason"],
        submitted_by=data["submitted_by"],
    )


def write_job(session: Session, old: JobStatus, new: JobStatus) -> None:
    """Replace `old` by `new`, only if the row still holds `old`'s version."""
    values = job_values(new)
    for fixed in ("id", "job", "submitter", "submitter_site", "submitted_by"):
        del values[fixed]
    result = session.execute(
        update(jobs)
        .where(jobs.c.id == old.job_id)
        .where(jobs.c.version == old.version)
        .values(values)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict(
            f"job {old.job_id} was changed concurrently; read it again and retry",
            {"job_id": old.job_id},
        )


def insert_steps(session: Session, status: JobStatus, now: datetime) -> list[StepStatus]:
    """Insert a `waiting` row for every step of a planned job; return those statuses."""
    assert status.plan is not None  # callers insert steps only for planned jobs
    waiting = [
        StepStatus.waiting(status.job_id, step, site, now)
        for step, site in status.plan.assignments.items()
    ]
    if waiting:
        session.execute(insert(job_steps), [step_values(step) for step in waiting])
    return waiting


def step_values(status: StepStatus) -> dict[str, Any]:
    return {
        "job_id": status.job_id,
        "step": status.step,
        "site": str(status.site),
        "state": status.state.value,
        "reason": status.reason,
        "exit_code": status.exit_code,
        "log_tail": status.log_tail,
        "results": {output: str(rid) for output, rid in status.results.items()},
        "version": status.version,
        "submitted_at": status.submitted_at,
        "started_at": status.started_at,
        "finished_at": status.finished_at,
        "updated_at": status.updated_at,
    }


def step_from_row(row: Row[Any]) -> StepStatus:
    data = row._mapping
    return StepStatus(
        job_id=data["job_id"],
        step=data["step"],
        site=SiteId.parse(data["site"]),
        state=StepState(data["state"]),
        submitted_at=data["submitted_at"],
        updated_at=data["updated_at"],
        version=data["version"],
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        reason=data["reason"],
        exit_code=data["exit_code"],
        log_tail=data["log_tail"],
        results={output: ResultId.parse(rid) for output, rid in data["results"].items()},
    )


def write_step(session: Session, old: StepStatus, new: StepStatus) -> None:
    """Replace `old` by `new`, only if the row still holds `old`'s version."""
    values = step_values(new)
    del values["job_id"], values["step"]
    result = session.execute(
        update(job_steps)
        .where(job_steps.c.job_id == old.job_id)
        .where(job_steps.c.step == old.step)
        .where(job_steps.c.version == old.version)
        .values(values)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict(
            f"step {old.step!r} of job {old.job_id} was changed concurrently; read it again"
            " and retry",
            {"job_id": old.job_id, "step": old.step},
        )


def assignment_values(assignment: StepAssignment, now: datetime) -> dict[str, Any]:
    return {
        "job_id": assignment.job_id,
        "submitter_site": str(assignment.submitter_site),
        "site": str(assignment.site),
        "job": job_to_dict(assignment.job),
        "plan": plan_to_dict(assignment.plan),
        "received_at": now,
    }


def assignment_from_row(row: Row[Any]) -> StepAssignment:
    data = row._mapping
    return StepAssignment(
        data["job_id"],
        SiteId.parse(data["submitter_site"]),
        SiteId.parse(data["site"]),
        job_from_dict(data["job"]),
        plan_from_dict(data["plan"]),
    )


def locked_job(session: Session, job_id: JobId) -> JobStatus | None:
    """The job submitted here, its row locked for the transaction; None if unknown."""
    row = session.execute(select_job(job_id).with_for_update()).one_or_none()
    return None if row is None else job_from_row(row)


def locked_step(session: Session, job_id: JobId, step: str) -> StepStatus:
    """A step, its row locked for the transaction; NotFound if unknown."""
    row = session.execute(select_step(job_id, step).with_for_update()).one_or_none()
    if row is None:
        raise step_not_found(job_id, step)
    return step_from_row(row)


def assigned_job(session: Session, job_id: JobId) -> Job:
    """The job of steps handed here (its assignment must exist)."""
    job = session.execute(
        select(job_assignments.c.job).where(job_assignments.c.job_id == job_id)
    ).scalar_one_or_none()
    if job is None:
        # Step rows are only ever created with their job or assignment.
        raise Internal(f"job {job_id} has step rows but no job or assignment")
    return job_from_dict(job)


def job_known(session: Session, job_id: JobId) -> bool:
    """Whether the job was submitted or handed here."""
    for statement in (select_job(job_id), select_assignment(job_id)):
        if session.execute(statement).first() is not None:
            return True
    return False


def prune_logs(session: Session, finished_before: datetime) -> int:
    """Put LOG_PRUNED for the kept logs of steps finished before `finished_before`; how many."""
    kept = job_steps.c.log_tail
    done = job_steps.c.finished_at < finished_before
    pruned = update(job_steps).where(done, kept.is_not(None), kept != LOG_PRUNED)
    return int(session.execute(pruned.values(log_tail=LOG_PRUNED)).rowcount or 0)  # type: ignore[attr-defined]
