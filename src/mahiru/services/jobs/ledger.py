"""This site's record of the jobs it takes part in, on its clock: the job ledger.

What every part of orchestration asks the job repository with the time of
day: which job a step belongs to and how it was planned (`known_job`), and
what came in for it (`incoming`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import NotFound, NotKnown
from mahiru.model.identifiers import AssetId, JobId, ResultId, SiteId
from mahiru.model.workflow import Job, Plan
from mahiru.services.jobs.step_changes import StepChanges
from mahiru.services.jobs.waits import StepWaits
from mahiru.services.site.transfers import Transfer
from mahiru.storage import JobRepository


@dataclass(frozen=True, slots=True)
class KnownJob:
    """A job known at this site (submitted here, or with steps handed to it)."""

    job_id: JobId
    job: Job
    plan: Plan
    submitter_site: SiteId

    @property
    def sites(self) -> set[SiteId]:
        """Every site that takes part: the plan's sites and the submitter's."""
        return {*self.plan.assignments.values(), self.submitter_site}


@dataclass(frozen=True, slots=True)
class JobLedger:
    """The jobs and steps of one site (`site`), stamped with `clock`'s time, what its
    unfinished steps wait for (`waits`), and who waits for them to change (`changes`)."""

    site: SiteId
    job_records: JobRepository
    clock: Clock = SYSTEM_CLOCK
    waits: StepWaits = field(default_factory=StepWaits)
    changes: StepChanges = field(default_factory=StepChanges)

    def now(self) -> datetime:
        """The current time (UTC)."""
        return self.clock.now()

    def note_wait(self, job_id: JobId, step: str, reason: str, site: SiteId | None = None) -> int:
        """Note that a try of `step` met `reason` (at the peer `site`) now; how many tries
        in a row have met it (1: a new wait, worth a log line)."""
        return self.waits.note(job_id, step, reason, self.now(), site).attempts

    def known_job(self, job_id: JobId) -> KnownJob:
        """The job and plan of `job_id`, submitted here or handed here; NotFound otherwise."""
        try:
            status = self.job_records.get_job(job_id)
        except NotFound:
            assignment = self.job_records.assignment(job_id)
            return KnownJob(job_id, assignment.job, assignment.plan, assignment.submitter_site)
        if status.plan is None:
            raise NotKnown("job", job_id)  # the peers it is told to know only its plan
        return KnownJob(job_id, status.job, status.plan, status.submitter_site)

    def incoming(self, known: KnownJob, asset: AssetId | ResultId, source: SiteId) -> Transfer:
        """An image of `asset` coming from `source` to this site for job `known`."""
        return Transfer(
            asset, str(source), str(self.site), party=str(known.job.submitter), job=known.job_id
        )
