"""Reading a site's jobs and steps (the writing half is `JobRepository`, storage/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select

from mahiru.errors import NotKnown
from mahiru.model.identifiers import JobId, PartyId, SiteId
from mahiru.model.jobs import (
    TERMINAL_STEP_STATES,
    JobState,
    JobStatus,
    StepAssignment,
    StepState,
    StepStatus,
)
from mahiru.storage import job_rows
from mahiru.storage.db import Database, positive_limit
from mahiru.storage.schema import job_steps, jobs

#: The values of the step states that are not final.
UNFINISHED = [state.value for state in StepState if state not in TERMINAL_STEP_STATES]


class JobQueries:
    """Queries on the jobs submitted here and the steps known here; none changes anything."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def get_job(self, job_id: JobId) -> JobStatus:
        """The status of a job submitted here; NotFound if there is none."""
        with self._db.read() as session:
            row = session.execute(job_rows.select_job(job_id)).one_or_none()
        if row is None:
            raise job_rows.job_not_found(job_id)
        return job_rows.job_from_row(row)

    def list_jobs(
        self,
        submitter: PartyId | None = None,
        states: Iterable[JobState] | None = None,
        *,
        submitted_by: str | None = None,
    ) -> list[JobStatus]:
        """Jobs submitted here, oldest first, optionally only one party's (or one person's,
        `submitted_by`) or in some states."""
        statement = select(jobs).order_by(jobs.c.submitted_at, jobs.c.id)
        if submitter is not None:
            statement = statement.where(jobs.c.submitter == str(submitter))
        if submitted_by is not None:
            statement = statement.where(jobs.c.submitted_by == submitted_by)
        if states is not None:
            statement = statement.where(jobs.c.state.in_([s.value for s in states]))
        with self._db.read() as session:
            rows = session.execute(statement).all()
        return [job_rows.job_from_row(row) for row in rows]

    def recent_jobs(
        self,
        submitter: PartyId,
        *,
        submitted_by: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[JobStatus], int]:
        """One page of `submitter`'s jobs submitted here (only one person's, with
        `submitted_by`), newest first, and how many there are."""
        where = jobs.c.submitter == str(submitter)
        if submitted_by is not None:
            where = where & (jobs.c.submitted_by == submitted_by)
        statement = (
            select(jobs)
            .where(where)
            .order_by(jobs.c.submitted_at.desc(), jobs.c.id)
            .offset(max(offset, 0))
            .limit(positive_limit(limit))
        )
        with self._db.read() as session:
            rows = session.execute(statement).all()
            total = session.execute(
                select(func.count()).select_from(jobs).where(where)
            ).scalar_one()
        return [job_rows.job_from_row(row) for row in rows], total

    def assignment(self, job_id: JobId) -> StepAssignment:
        """The steps handed to this site for a job; NotFound if none were."""
        with self._db.read() as session:
            row = session.execute(job_rows.select_assignment(job_id)).one_or_none()
        if row is None:
            raise NotKnown("job", job_id)
        return job_rows.assignment_from_row(row)

    def step_status(self, job_id: JobId, step: str) -> StepStatus:
        """The status of one step; NotFound if it is not known here."""
        with self._db.read() as session:
            row = session.execute(job_rows.select_step(job_id, step)).one_or_none()
        if row is None:
            raise job_rows.step_not_found(job_id, step)
        return job_rows.step_from_row(row)

    def steps_of(self, job_id: JobId) -> list[StepStatus]:
        """The statuses of a job's steps known here, by step name; NotFound for unknown jobs."""
        with self._db.read() as session:
            rows = session.execute(
                select(job_steps).where(job_steps.c.job_id == job_id).order_by(job_steps.c.step)
            ).all()
            if not rows and not job_rows.job_known(session, job_id):
                raise job_rows.job_not_found(job_id)
        return [job_rows.step_from_row(row) for row in rows]

    def unfinished_steps(self, site: SiteId | None = None) -> list[StepStatus]:
        """Steps not in a final state (optionally only those run at `site`), by job and step.

        After a restart, the site resumes or fails those it runs itself and
        asks the other sites about the rest.
        """
        statement = (
            select(job_steps)
            .where(job_steps.c.state.in_(UNFINISHED))
            .order_by(job_steps.c.job_id, job_steps.c.step)
        )
        if site is not None:
            statement = statement.where(job_steps.c.site == str(site))
        with self._db.read() as session:
            rows = session.execute(statement).all()
        return [job_rows.step_from_row(row) for row in rows]
