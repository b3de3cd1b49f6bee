"""One site's job services, started with the app and stopped at shutdown.

Its parts are built and wired together by the site's composition root
(`mahiru.bootstrap`); this class starts and stops them, and answers the
read-only questions the site's pages ask.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from mahiru.model.jobs import JobStatus
from mahiru.model.people import Person
from mahiru.runtime.limits import StepLimits
from mahiru.services.jobs.assignment import StepAssignments
from mahiru.services.jobs.coordination import JobCoordinator
from mahiru.services.jobs.egress import Egress
from mahiru.services.jobs.live_grants import LiveGrants
from mahiru.services.jobs.ports import JobPorts
from mahiru.services.jobs.review_exchange import ReviewExchange
from mahiru.services.jobs.step_logs import StepLogs
from mahiru.services.jobs.submission import JobSubmissions
from mahiru.services.jobs.worker import StepWorker

logger = logging.getLogger("mahiru.site.jobs")


@dataclass(frozen=True, slots=True)
class JobLoops:
    """The background loops of the job path: the worker runs the steps handed to this
    site, the coordinator drives the jobs submitted here, the review exchange offers and
    reports reviews whose reviewer is another party."""

    worker: StepWorker
    coordinator: JobCoordinator
    #: Set when the loops stop: waits inside rounds and retries end early.
    stopping: threading.Event
    review_exchange: ReviewExchange

    def start(self) -> None:
        """Start the loops (unfinished work is picked up where it was)."""
        self.stopping.clear()
        self.worker.start()
        self.coordinator.start()
        self.review_exchange.start()

    def stop(self) -> None:
        """Stop the loops; running steps are redone after the next start."""
        self.stopping.set()
        self.review_exchange.stop()
        self.coordinator.stop()
        self.worker.stop()


@dataclass(frozen=True, slots=True)
class JobServices:
    """Submission and queries for users, hand-over for peers, and the two background loops.

    On start, step containers an earlier run of this site left are removed,
    and unfinished steps and jobs are picked up where they were.
    """

    #: The ports the parts were built from (for looking inside in tests).
    ports: JobPorts
    submissions: JobSubmissions
    assignments: StepAssignments
    egress: Egress
    live: LiveGrants
    loops: JobLoops

    def start(self) -> None:
        """Resume unfinished work and start the background loops."""
        self.ports.environment.clean_up()
        self.loops.start()
        logger.info("job services started", extra={"site": str(self.ports.ledger.site)})

    def stop(self) -> None:
        """Stop the loops; running steps are redone after the next start."""
        self.loops.stop()
        self.live.revoke_all()
        self.ports.ledger.changes.release_all()
        logger.info("job services stopped", extra={"site": str(self.ports.ledger.site)})

    def recent_jobs(
        self, person: Person, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[JobStatus], int]:
        """One page of the jobs submitted here that `person` sees (`Person.sees_job`),
        newest first, and how many there are in all."""
        return self.ports.ledger.job_records.recent_jobs(
            person.party, submitted_by=person.jobs_submitted_by(), offset=offset, limit=limit
        )

    def step_limits(self) -> StepLimits:
        """What one step container of this site may use."""
        return self.ports.environment.limits

    @property
    def step_logs(self) -> StepLogs:
        """The logs of steps as they are written, for the users who may see them."""
        ports = self.ports
        return StepLogs(
            ports.ledger,
            ports.environment,
            self.submissions,
            self.egress,
            ports.peers,
            self.loops.stopping,
        )

    def running_step_count(self) -> int:
        """How many steps of this site its runner runs (Unavailable if it cannot be reached)."""
        environment = self.ports.environment
        labels = environment.labels(self.ports.ledger.site)
        return len(environment.runner.list_step_containers(labels))
