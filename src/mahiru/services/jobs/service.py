"""One site's job services, started with the app and stopped at shutdown.

Its parts are built and wired together by the site's composition root
(`mahiru.bootstrap`); this class starts and stops them, and answers the
read-only questions the site's pages ask.
"""

from __future__ import annotations

import logging
import threading

from mahiru.model.jobs import JobStatus
from mahiru.model.people import Person
from mahiru.services.jobs.assignment import StepAssignments
from mahiru.services.jobs.coordination import JobCoordinator
from mahiru.services.jobs.egress import Egress
from mahiru.services.jobs.live_grants import LiveGrants
from mahiru.services.jobs.ports import JobPorts
from mahiru.services.jobs.submission import JobSubmissions
from mahiru.services.jobs.worker import StepWorker

logger = logging.getLogger("mahiru.site.jobs")


class JobServices:
    """Submission and queries for users, hand-over for peers, and the two background loops.

    On start, step containers an earlier run of this site left are removed,
    and unfinished steps and jobs are picked up where they were.
    """

    def __init__(
        self,
        *,
        ports: JobPorts,
        submissions: JobSubmissions,
        assignments: StepAssignments,
        egress: Egress,
        live: LiveGrants,
        worker: StepWorker,
        coordinator: JobCoordinator,
        stopping: threading.Event,
    ) -> None:
        #: The ports the parts were built from (for looking inside in tests).
        self.ports = ports
        #: Set when the services stop: waits inside rounds and retries end early.
        self._stopping = stopping
        self.submissions = submissions
        self.assignments = assignments
        self.egress = egress
        self.live = live
        self.worker = worker
        self.coordinator = coordinator

    def start(self) -> None:
        """Resume unfinished work and start the background loops."""
        self._stopping.clear()
        self.ports.environment.clean_up()
        self.worker.start()
        self.coordinator.start()
        logger.info("job services started", extra={"site": str(self.ports.ledger.site)})

    def stop(self) -> None:
        """Stop the loops; running steps are redone after the next start."""
        self._stopping.set()
        self.coordinator.stop()
        self.worker.stop()
        self.live.revoke_all()
        logger.info("job services stopped", extra={"site": str(self.ports.ledger.site)})

    def recent_jobs(
        self, person: Person, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[JobStatus], int]:
        """One page of the jobs submitted here that `person` sees (`Person.sees_job`),
        newest first, and how many there are in all."""
        return self.ports.ledger.job_records.recent_jobs(
            person.party, submitted_by=person.jobs_submitted_by(), offset=offset, limit=limit
        )

    def running_step_count(self) -> int:
        """How many steps of this site its runner runs (Unavailable if it cannot be reached)."""
        environment = self.ports.environment
        labels = environment.labels(self.ports.ledger.site)
        return len(environment.runner.list_step_containers(labels))
