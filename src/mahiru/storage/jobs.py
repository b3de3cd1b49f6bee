"""Jobs and their steps as a site keeps them (provenance: storage/provenance.py).

A site plays two roles, both kept here. As the *submitter's site* it keeps
the jobs its users submitted (`create_job`, `set_plan`, `set_job_state`,
`cancel_job`) with one status row per step, wherever the step runs. As an
*executing site* it keeps the steps other sites (or itself) handed it
(`upsert_step_assignment`) and moves them along (`set_step_state`). A step
the submitter's site runs itself has one row serving both roles; for a step
run elsewhere, the submitter's site records the statuses the other site
reports (`mirror_step_status`).

Every change is one transaction. Updates lock the row they change (PostgreSQL
`SELECT ... FOR UPDATE`; SQLite's write transactions take turns anyway), check
the transition against the state they read, and write only if the row's
`version` is still the one read, so concurrent updates are applied one after
the other and never lost. Row locks are always taken job first, then steps.

While a job submitted here is planned or running, every change to its steps
also moves the job (`derive_job_state`): to `running` when a step starts, to
`failed` or `cancelled` when a step does. `succeeded` is left to the
submitter's site, which sets it once it has collected the outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mahiru.errors import Conflict
from mahiru.model.identifiers import JobId, ResultId, SiteId
from mahiru.model.jobs import (
    JobState,
    JobStatus,
    StepAssignment,
    StepState,
    StepStatus,
    advance_job,
    advance_step,
    can_reach,
    check_job_id,
    check_step_status,
    derive_job_state,
    noted_job,
)
from mahiru.model.workflow import Job, Plan
from mahiru.storage import job_rows
from mahiru.storage.audit import AuditLog, job_entry, step_entry
from mahiru.storage.db import Database, insert_ignoring_duplicates
from mahiru.storage.job_queries import UNFINISHED, JobQueries
from mahiru.storage.schema import job_assignments, job_steps, jobs


class JobRepository(JobQueries):
    """Jobs and steps, every state change also written to the audit log in its transaction.

    The reading queries are `JobQueries`'.
    """

    def __init__(self, database: Database, *, audit: AuditLog | None = None) -> None:
        super().__init__(database)
        self._audit = audit if audit is not None else AuditLog(database)

    # --- jobs submitted here ------------------------------------------------------------

    def create_job(
        self,
        job_id: JobId,
        job: Job,
        plan: Plan | None,
        submitter_site: SiteId,
        now: datetime,
        *,
        submitted_by: str | None = None,
    ) -> JobStatus:
        """Store a job submitted here (by the person `submitted_by`): `planned` with a step
        row per step, or `submitted`.

        Creating the same job (same job, plan and site) again returns the
        stored status unchanged; a different job under this id is a Conflict.
        """
        state = JobState.SUBMITTED if plan is None else JobState.PLANNED
        status = JobStatus(
            check_job_id(job_id),
            job,
            submitter_site,
            state,
            now,
            now,
            plan=plan,
            submitted_by=submitted_by,
        )
        with self._db.transaction() as session:
            if not insert_ignoring_duplicates(session, jobs, job_rows.job_values(status)):
                stored = job_rows.job_from_row(
                    job_rows.one(session, job_rows.select_job(job_id), f"job {job_id}")
                )
                if (stored.job, stored.plan, stored.submitter_site, stored.submitted_by) != (
                    job,
                    plan,
                    submitter_site,
                    submitted_by,
                ):
                    raise Conflict(
                        f"job {job_id} already exists with different content", {"job_id": job_id}
                    )
                return stored
            self._job_changed(None, status, submitted_by)
            if plan is not None:
                self._insert_steps(session, status, now)
        return status

    def set_plan(self, job_id: JobId, plan: Plan, now: datetime) -> JobStatus:
        """Move a submitted job to `planned` with `plan`, creating its step rows."""
        with self._db.transaction() as session:
            current = job_rows.locked_job(session, job_id)
            if current is None:
                raise job_rows.job_not_found(job_id)
            new = advance_job(current, JobState.PLANNED, now, plan=plan)
            self._write_job(session, current, new)
            self._insert_steps(session, new, now)
        return new

    def set_job_state(
        self, job_id: JobId, state: JobState, reason: str | None, now: datetime
    ) -> JobStatus:
        """Move a job submitted here to `state`; Conflict if that transition is not allowed.

        `succeeded` is also refused (Conflict) while any step is not done.
        To plan a job use `set_plan`; to cancel one with its steps, `cancel_job`.
        """
        with self._db.transaction() as session:
            current = job_rows.locked_job(session, job_id)
            if current is None:
                raise job_rows.job_not_found(job_id)
            new = advance_job(current, state, now, reason)
            if state is JobState.SUCCEEDED:
                undone = session.execute(
                    select(job_steps.c.step)
                    .where(job_steps.c.job_id == job_id)
                    .where(job_steps.c.state.not_in([s.value for s in StepState if s.done]))
                    .order_by(job_steps.c.step)
                ).scalars()
                names = list(undone)
                if names:
                    raise Conflict(
                        f"job {job_id} cannot succeed: steps {', '.join(names)} are not done",
                        {"job_id": job_id, "steps": names},
                    )
            self._write_job(session, current, new)
        return new

    def note_job(self, job_id: JobId, note: str | None, now: datetime) -> JobStatus:
        """Say what a running job waits for (its reason; None: nothing), its state
        unchanged; written (and audited) only when the note changes. Conflict unless
        it is running."""
        with self._db.transaction() as session:
            current = job_rows.locked_job(session, job_id)
            if current is None:
                raise job_rows.job_not_found(job_id)
            if current.reason == note:
                return current
            new = noted_job(current, note, now)
            self._write_job(session, current, new)
        return new

    def cancel_job(
        self, job_id: JobId, reason: str, now: datetime, *, user: str | None = None
    ) -> JobStatus:
        """Cancel a job submitted here and every unfinished step row of it, at once, at the
        request of the person `user` (named in their audit records).

        Conflict if the job is already finished. Telling the sites that run
        the steps is the caller's business.
        """
        with self._db.transaction() as session:
            current = job_rows.locked_job(session, job_id)
            if current is None:
                raise job_rows.job_not_found(job_id)
            new = advance_job(current, JobState.CANCELLED, now, reason)
            self._write_job(session, current, new, user)
            self._cancel_steps(session, new, job_id, reason, now, user)
        return new

    # --- steps ------------------------------------------------------------------------

    def upsert_step_assignment(self, assignment: StepAssignment, now: datetime) -> list[StepStatus]:
        """Record the steps handed to `assignment.site`; return their statuses.

        Steps not known yet start `waiting`; steps already known keep their
        state, so receiving the same assignment again changes nothing. A
        different job or plan under the same job id is a Conflict, also if it
        differs from a job submitted here. The submitter's site records the
        steps it runs itself this way too.
        """
        job_id = assignment.job_id
        with self._db.transaction() as session:
            submitted = job_rows.locked_job(session, job_id)
            if submitted is not None and (
                submitted.job,
                submitted.plan,
                submitted.submitter_site,
            ) != (assignment.job, assignment.plan, assignment.submitter_site):
                raise Conflict(
                    f"the steps handed over for job {job_id} do not match the job submitted"
                    " here under that id (or its plan)",
                    {"job_id": job_id},
                )
            if not insert_ignoring_duplicates(
                session, job_assignments, job_rows.assignment_values(assignment, now)
            ):
                stored = job_rows.assignment_from_row(
                    job_rows.one(
                        session, job_rows.select_assignment(job_id), f"assignment of job {job_id}"
                    )
                )
                if stored != assignment:
                    raise Conflict(
                        f"job {job_id} was handed over before with a different job, plan or site",
                        {"job_id": job_id},
                    )
            steps = assignment.steps
            for step in steps:
                waiting = StepStatus.waiting(job_id, step, assignment.site, now)
                if insert_ignoring_duplicates(session, job_steps, job_rows.step_values(waiting)):
                    self._step_changed(assignment.job, None, waiting)
            rows = session.execute(
                select(job_steps)
                .where(job_steps.c.job_id == job_id)
                .where(job_steps.c.step.in_(steps))
            ).all()
        by_step = {status.step: status for status in map(job_rows.step_from_row, rows)}
        return [by_step[step] for step in steps]

    def set_step_state(
        self,
        job_id: JobId,
        step: str,
        new_state: StepState,
        now: datetime,
        reason: str | None = None,
        exit_code: int | None = None,
        log_tail: str | None = None,
        results: Mapping[str, ResultId] | None = None,
    ) -> StepStatus:
        """Move a step to `new_state` (see `advance_step`); return its new status.

        Conflict if the transition is not allowed from the stored state,
        NotFound if the step is not known here. A job submitted here follows
        its steps in the same transaction.
        """
        with self._db.transaction() as session:
            submitted = job_rows.locked_job(session, job_id)
            current = job_rows.locked_step(session, job_id, step)
            job = submitted.job if submitted is not None else job_rows.assigned_job(session, job_id)
            new = advance_step(
                job,
                current,
                new_state,
                now,
                reason=reason,
                exit_code=exit_code,
                log_tail=log_tail,
                results=results,
            )
            self._write_step(session, job, current, new)
            self._follow_steps(session, submitted, now)
        return new

    def prune_step_logs(self, finished_before: datetime) -> int:
        """Put LOG_PRUNED for the kept logs of steps finished before `finished_before`."""
        with self._db.transaction() as session:
            return job_rows.prune_logs(session, finished_before)

    def mirror_step_status(self, status: StepStatus, now: datetime) -> StepStatus:
        """Record a status reported by the site that runs the step; return the stored one.

        A report older than the stored status (a lower or equal version), or
        about a step already finished here, is ignored. A newer one is stored
        as it is, and may skip states; one that would move the step backwards,
        comes from another site than the plan's, or carries wrong results is
        a Conflict or InvalidInput. `now` is the time of any job change.
        """
        with self._db.transaction() as session:
            submitted = job_rows.locked_job(session, status.job_id)
            current = job_rows.locked_step(session, status.job_id, status.step)
            job = (
                submitted.job
                if submitted is not None
                else job_rows.assigned_job(session, status.job_id)
            )
            check_step_status(job, status)
            if status.site != current.site:
                raise Conflict(
                    f"step {status.step!r} of job {status.job_id} runs at {current.site},"
                    f" not at {status.site}",
                    {"site": str(current.site), "reported": str(status.site)},
                )
            if current.state.terminal or status.version <= current.version:
                return current
            if status.state != current.state and not can_reach(current.state, status.state):
                raise Conflict(
                    f"step {status.step!r} of job {status.job_id} cannot go from"
                    f" {current.state.value} to {status.state.value}",
                    {"from": current.state.value, "to": status.state.value},
                )
            self._write_step(session, job, current, status)
            self._follow_steps(session, submitted, now)
        return status

    def cancel_steps(self, job_id: JobId, reason: str, now: datetime) -> list[StepStatus]:
        """Cancel every unfinished step of a job known here; return the cancelled statuses."""
        with self._db.transaction() as session:
            submitted = job_rows.locked_job(session, job_id)
            return self._cancel_steps(session, submitted, job_id, reason, now)

    # --- inside a transaction ------------------------------------------------------------

    def _cancel_steps(
        self,
        session: Session,
        submitted: JobStatus | None,
        job_id: JobId,
        reason: str,
        now: datetime,
        user: str | None = None,
    ) -> list[StepStatus]:
        rows = session.execute(
            select(job_steps)
            .where(job_steps.c.job_id == job_id)
            .where(job_steps.c.state.in_(UNFINISHED))
            .order_by(job_steps.c.step)
            .with_for_update()
        ).all()
        if not rows:
            if submitted is None and not job_rows.job_known(session, job_id):
                raise job_rows.job_not_found(job_id)
            return []
        job = submitted.job if submitted is not None else job_rows.assigned_job(session, job_id)
        cancelled = []
        for row in rows:
            current = job_rows.step_from_row(row)
            new = advance_step(job, current, StepState.CANCELLED, now, reason=reason)
            self._write_step(session, job, current, new, user)
            cancelled.append(new)
        self._follow_steps(session, submitted, now)
        return cancelled

    def _follow_steps(self, session: Session, submitted: JobStatus | None, now: datetime) -> None:
        """Move a planned or running job submitted here to the state its steps imply."""
        if submitted is None or submitted.state not in (JobState.PLANNED, JobState.RUNNING):
            return
        job_id = submitted.job_id
        states = session.execute(
            select(job_steps.c.state).where(job_steps.c.job_id == job_id).distinct()
        ).scalars()
        derived = derive_job_state(StepState(state) for state in states)
        if derived in (JobState.FAILED, JobState.CANCELLED):
            culprit = session.execute(
                select(job_steps.c.step)
                .where(job_steps.c.job_id == job_id)
                .where(job_steps.c.state == derived.value)
                .order_by(job_steps.c.finished_at, job_steps.c.step)
                .limit(1)
            ).scalar_one()
            # The step's own reason is its output, shown (or withheld) with the step
            # by the egress gate; the job's reason names the step only.
            new = advance_job(submitted, derived, now, f"step {culprit} {derived.value}")
        elif derived is not JobState.PLANNED and submitted.state is JobState.PLANNED:
            new = advance_job(submitted, JobState.RUNNING, now)
        else:
            return
        self._write_job(session, submitted, new)

    def _write_job(
        self, session: Session, old: JobStatus, new: JobStatus, user: str | None = None
    ) -> None:
        job_rows.write_job(session, old, new)
        self._job_changed(old, new, user)

    def _write_step(
        self, session: Session, job: Job, old: StepStatus, new: StepStatus, user: str | None = None
    ) -> None:
        job_rows.write_step(session, old, new)
        self._step_changed(job, old, new, user)

    def _insert_steps(self, session: Session, status: JobStatus, now: datetime) -> None:
        for waiting in job_rows.insert_steps(session, status, now):
            self._step_changed(status.job, None, waiting)

    def _job_changed(self, old: JobStatus | None, new: JobStatus, user: str | None = None) -> None:
        self._audit.record(job_entry(old, new, user))

    def _step_changed(
        self, job: Job, old: StepStatus | None, new: StepStatus, user: str | None = None
    ) -> None:
        self._audit.record(step_entry(job, old, new, user))
