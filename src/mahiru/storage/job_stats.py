"""Counts over a site's jobs and steps, for its metrics."""

from __future__ import annotations

from sqlalchemy import func, select

from mahiru.storage.db import Database
from mahiru.storage.schema import job_steps, jobs


def job_state_counts(database: Database) -> dict[str, int]:
    """How many jobs submitted here are in each state."""
    with database.read() as session:
        rows = session.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all()
    return {str(state): int(count) for state, count in rows}


def step_state_counts(database: Database) -> dict[tuple[str, str], int]:
    """How many steps known here are in each state, by (site running it, state)."""
    with database.read() as session:
        rows = session.execute(
            select(job_steps.c.site, job_steps.c.state, func.count()).group_by(
                job_steps.c.site, job_steps.c.state
            )
        ).all()
    return {(str(site), str(state)): int(count) for site, state, count in rows}


def step_durations(database: Database, site: str) -> list[float]:
    """Seconds from start to end of every finished step `site` ran."""
    with database.read() as session:
        rows = session.execute(
            select(job_steps.c.started_at, job_steps.c.finished_at)
            .where(job_steps.c.site == site)
            .where(job_steps.c.started_at.is_not(None))
            .where(job_steps.c.finished_at.is_not(None))
        ).all()
    return [max((end - start).total_seconds(), 0.0) for start, end in rows]
