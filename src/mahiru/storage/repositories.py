"""The repositories of one site's database, built together at the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.storage.assets import AssetRepository
from mahiru.storage.audit import AuditLog
from mahiru.storage.db import Database
from mahiru.storage.jobs import JobRepository
from mahiru.storage.provenance import ProvenanceRepository
from mahiru.storage.replicas import ReplicaRepository
from mahiru.storage.reviews import ReviewRepository
from mahiru.storage.rules import RuleRepository
from mahiru.storage.write_counts import WriteCounts


@dataclass(frozen=True, slots=True)
class ResultRecords:
    """What a site keeps about results besides their bytes: how each was made, and the
    reviews of releasing them to other parties."""

    provenance: ProvenanceRepository
    reviews: ReviewRepository


@dataclass(frozen=True, slots=True)
class SiteRepositories:
    """Every repository a site's services use, on one database.

    The database they were opened on is the unit of work:
    `database.transaction()` spans the repositories' changes made inside it.
    """

    assets: AssetRepository
    rules: RuleRepository
    replica: ReplicaRepository
    jobs: JobRepository
    #: Results' provenance and the reviews of their release.
    results: ResultRecords
    audit: AuditLog

    @classmethod
    def open(
        cls,
        database: Database,
        *,
        clock: Clock = SYSTEM_CLOCK,
        counts: WriteCounts | None = None,
    ) -> SiteRepositories:
        """The repositories on an opened (migrated) `database`, timed by `clock`; the rule
        and replica repositories count their writes in `counts` (this process's own if
        None)."""
        audit = AuditLog(database, clock=clock)
        counts = counts if counts is not None else WriteCounts()
        return cls(
            assets=AssetRepository(database, clock=clock),
            rules=RuleRepository(database, clock=clock, audit=audit, counts=counts),
            replica=ReplicaRepository(database, clock=clock, audit=audit, counts=counts),
            jobs=JobRepository(database, audit=audit),
            results=ResultRecords(
                ProvenanceRepository(database), ReviewRepository(database, audit=audit)
            ),
            audit=audit,
        )
