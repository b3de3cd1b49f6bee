"""One site's job services wired together, started with the app and stopped at shutdown."""

from __future__ import annotations

import logging
import shutil
import threading

from mahiru.errors import MahiruError
from mahiru.model.identifiers import JobId, SiteId
from mahiru.model.jobs import JobStatus
from mahiru.model.live import LiveReader
from mahiru.model.people import Person
from mahiru.services.jobs.assignment import StepAssignments
from mahiru.services.jobs.context import JobContext
from mahiru.services.jobs.coordination import JobCoordinator
from mahiru.services.jobs.dispatch import Dispatcher
from mahiru.services.jobs.egress import Egress
from mahiru.services.jobs.execution import UNAVAILABLE_DEADLINE
from mahiru.services.jobs.live_grants import LiveGrants
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
        ctx: JobContext,
        *,
        max_parallel_steps: int = 4,
        peer_retry_deadline: float = UNAVAILABLE_DEADLINE,
    ) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self.worker = StepWorker(
            ctx, max_parallel=max_parallel_steps, unavailable_deadline=peer_retry_deadline
        )
        self.live = LiveGrants(ctx, self._ask_submitter)
        self.egress = Egress(ctx.policy, ctx.assets, ctx.provenance, ctx.transfers, self.live)
        self.assignments = StepAssignments(
            ctx, self.egress, self.worker.wake, self.worker.stop_containers
        )
        dispatcher = Dispatcher(
            ctx.site, ctx.jobs, ctx.peers, self.assignments, self._stop, clock=ctx.clock
        )
        self.submissions = JobSubmissions(
            ctx,
            self.egress,
            on_change=self._wake,
            stop_job=self.worker.stop_containers,
        )
        self.coordinator = JobCoordinator(ctx, dispatcher, self.submissions)

    def recent_jobs(
        self, person: Person, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[JobStatus], int]:
        """One page of the jobs submitted here that `person` sees (`Person.sees_job`),
        newest first, and how many there are in all."""
        return self.ctx.jobs.recent_jobs(
            person.party, submitted_by=person.jobs_submitted_by(), offset=offset, limit=limit
        )

    def step_container_count(self) -> int:
        """How many step containers the container engine holds now; a MahiruError
        (Unavailable) when the engine cannot be reached."""
        return len(self.ctx.runtime.list_step_containers())

    def _ask_submitter(self, site: SiteId, job_id: JobId, job_digest: str) -> list[LiveReader]:
        """The unfinished steps of a job submitted at `site` reading data stored here."""
        if site == self.ctx.site:
            return self.assignments.readers(job_id, site, job_digest)
        return self.ctx.peers.get(site).readers(job_id, job_digest)

    def _wake(self) -> None:
        self.worker.wake()
        self.coordinator.wake()

    def start(self) -> None:
        """Resume unfinished work and start the background loops."""
        self._clean_up()
        self.worker.start()
        self.coordinator.start()
        logger.info("job services started", extra={"site": str(self.ctx.site)})

    def _clean_up(self) -> None:
        """Remove what a crash may have left: output spaces, work folders, scratch containers.

        Nothing of it is needed after a restart: every unfinished step is
        redone from the state it is in, with fresh work folders.
        """
        work = self.ctx.work_dir
        work.mkdir(parents=True, exist_ok=True)
        runtime = self.ctx.runtime
        unmounted = runtime.release_output_spaces(work)
        removed = 0
        for entry in list(work.iterdir()):
            removed += 1
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        try:
            scratch = runtime.remove_scratch_containers()
        except MahiruError as error:
            scratch = 0
            logger.warning("cannot look for scratch containers: %s", error.message)
        if unmounted or removed or scratch:
            logger.info(
                "cleaned up after an earlier run",
                extra={"output_spaces": unmounted, "work_entries": removed, "scratch": scratch},
            )

    def stop(self) -> None:
        """Stop the loops; running steps are redone after the next start."""
        self._stop.set()
        self.coordinator.stop()
        self.worker.stop()
        self.live.revoke_all()
        self.ctx.peers.close()
        logger.info("job services stopped", extra={"site": str(self.ctx.site)})
