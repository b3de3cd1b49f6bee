"""How each result stored at a site was made: the job, step and output behind its id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Row

from mahiru.errors import NotFound
from mahiru.model.identifiers import ResultId
from mahiru.model.jobs import (
    ResultProvenance,
)
from mahiru.model.serialization import (
    job_digest,
    job_from_dict,
    job_to_dict,
)
from mahiru.storage.db import Database, insert_ignoring_duplicates
from mahiru.storage.job_rows import one
from mahiru.storage.schema import (
    provenance_jobs,
    result_provenance,
)


class ProvenanceRepository:
    """The provenance of results stored here; each job recorded once, by its digest."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add_provenance(self, provenance: ResultProvenance, now: datetime) -> ResultProvenance:
        """Record how a result was made; if one is recorded already, keep and return that.

        Any provenance of a result will do: its id is a hash of the
        computation, so every job that made it made it the same way.
        """
        job_dict = job_to_dict(provenance.job)
        digest = job_digest(provenance.job)
        with self._db.transaction() as session:
            insert_ignoring_duplicates(
                session, provenance_jobs, {"digest": digest, "job": job_dict}
            )
            inserted = insert_ignoring_duplicates(
                session,
                result_provenance,
                {
                    "result_id": str(provenance.result),
                    "job_id": provenance.job_id,
                    "step": provenance.step,
                    "output": provenance.output,
                    "submitter": str(provenance.submitter),
                    "job_digest": digest,
                    "recorded_at": now,
                },
            )
            if inserted:
                return provenance
            row = one(session, _select_provenance(provenance.result), f"{provenance.result}")
        return _provenance_from_row(row)

    def get_provenance(self, result_id: ResultId) -> ResultProvenance:
        """How a result was made; NotFound if no provenance is recorded for it."""
        with self._db.read() as session:
            row = session.execute(_select_provenance(result_id)).one_or_none()
        if row is None:
            raise NotFound(f"no provenance is recorded for {result_id}", {"result": str(result_id)})
        return _provenance_from_row(row)


def _select_provenance(result_id: ResultId) -> Select[Any]:
    return (
        select(result_provenance, provenance_jobs.c.job)
        .join(provenance_jobs, provenance_jobs.c.digest == result_provenance.c.job_digest)
        .where(result_provenance.c.result_id == str(result_id))
    )


def _provenance_from_row(row: Row[Any]) -> ResultProvenance:
    data = row._mapping
    return ResultProvenance(
        ResultId.parse(data["result_id"]),
        data["job_id"],
        data["step"],
        data["output"],
        job_from_dict(data["job"]),
    )
