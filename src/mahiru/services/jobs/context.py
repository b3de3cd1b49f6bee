"""What every part of job orchestration at one site shares: stores, policy, peers, engine."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import NotFound, NotKnown
from mahiru.model.identifiers import AssetId, JobId, ResultId, SiteId
from mahiru.model.workflow import Job, Plan
from mahiru.runtime.limits import StepLimits
from mahiru.runtime.protocol import ContainerRuntime
from mahiru.services.jobs.peers import JobPeers
from mahiru.services.site.assets import AssetStore
from mahiru.services.site.policy_view import PolicyView
from mahiru.services.site.transfers import Transfer, TransferLog
from mahiru.storage import (
    AssetRepository,
    BlobStore,
    Database,
    JobRepository,
    ProvenanceRepository,
    ReplicaRepository,
)


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


@dataclass(frozen=True)
class JobContext:
    """The pieces of one site that orchestration uses (passed in, never global)."""

    site: SiteId
    database: Database
    blobs: BlobStore
    assets: AssetStore
    policy: PolicyView
    replica: ReplicaRepository
    peers: JobPeers
    runtime: ContainerRuntime
    limits: StepLimits
    work_dir: Path
    jobs: JobRepository
    provenance: ProvenanceRepository
    records: AssetRepository
    transfers: TransferLog
    clock: Clock = SYSTEM_CLOCK
    #: Signs what this site vouches for (result receipts) with its TLS key; None: no key.
    sign: Callable[[bytes], bytes] | None = None

    @property
    def instance(self) -> str:
        """Tells this site installation's containers from another's with the same site id.

        Two deployments on one engine (tests, demos, a staging copy) may use
        the same site id; step containers are labelled with this too, so a
        restarting site stops only its own.
        """
        return hashlib.sha256(str(self.work_dir.resolve()).encode()).hexdigest()[:16]

    def now(self) -> datetime:
        """The current time (UTC)."""
        return self.clock.now()

    def known_job(self, job_id: JobId) -> KnownJob:
        """The job and plan of `job_id`, submitted here or handed here; NotFound otherwise."""
        try:
            status = self.jobs.get_job(job_id)
        except NotFound:
            assignment = self.jobs.assignment(job_id)
            return KnownJob(job_id, assignment.job, assignment.plan, assignment.submitter_site)
        if status.plan is None:
            raise NotKnown("job", job_id)  # the peers it is told to know only its plan
        return KnownJob(job_id, status.job, status.plan, status.submitter_site)


def incoming(known: KnownJob, asset: AssetId | ResultId, source: SiteId, here: SiteId) -> Transfer:
    """An image of `asset` coming from `source` to this site for job `known`."""
    return Transfer(asset, str(source), str(here), party=str(known.job.submitter), job=known.job_id)
