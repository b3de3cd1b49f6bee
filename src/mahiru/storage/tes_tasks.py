"""What a job submitted as a GA4GH TES task keeps of the task besides the job itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from mahiru.model.identifiers import JobId
from mahiru.storage.db import Database
from mahiru.storage.schema import tes_tasks


@dataclass(frozen=True, slots=True)
class TaskFields:
    """A task's own fields: its name, description and tags, and the executors and
    resources as the client sent them (`request`), to show them back as sent."""

    name: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    request: Mapping[str, Any] = field(default_factory=dict)


class TaskFieldRepository:
    """The task fields of the jobs submitted here as tasks, by job id."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, job_id: JobId, fields: TaskFields) -> None:
        """Keep `fields` for the job `job_id`, in the transaction that is open (the one
        that stores the job) or in one of their own."""
        with self._db.transaction() as session:
            session.execute(
                tes_tasks.insert().values(
                    job_id=job_id,
                    name=fields.name,
                    description=fields.description,
                    tags=dict(fields.tags),
                    request=dict(fields.request),
                )
            )

    def of(self, job_ids: Iterable[JobId]) -> dict[JobId, TaskFields]:
        """The task fields of those of `job_ids` that were submitted as tasks."""
        wanted = [str(job_id) for job_id in job_ids]
        if not wanted:
            return {}
        statement = select(tes_tasks).where(tes_tasks.c.job_id.in_(wanted))
        with self._db.read() as session:
            rows = session.execute(statement).all()
        return {
            JobId(row.job_id): TaskFields(row.name, row.description, row.tags, row.request)
            for row in rows
        }
