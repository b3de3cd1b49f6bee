"""Handing each participating site its steps, from the submitter's site.

A peer that is unavailable is retried with backoff, here and by the
coordinator's later rounds (handing over is idempotent); a peer that refuses
(or is not registered) fails the job with its reason. Until a peer has its
steps, they wait saying so ("cannot hand over steps to SITE: ..."), with
since when and how many rounds tried; the log says it once per new reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from functools import partial

from mahiru.errors import Conflict, MahiruError, Unavailable
from mahiru.model.identifiers import JobId, SiteId
from mahiru.model.jobs import JobState, JobStatus, StepAssignment
from mahiru.services.jobs.assignment import StepAssignments
from mahiru.services.jobs.ledger import JobLedger
from mahiru.services.jobs.peers import JobPeers, retrying

logger = logging.getLogger("mahiru.site.jobs")


class Dispatcher:
    """Delivers a job's assignments; remembers (in memory) which were delivered."""

    def __init__(
        self,
        ledger: JobLedger,
        peers: JobPeers,
        assignments: StepAssignments,
        stop: threading.Event,
    ) -> None:
        self._ledger = ledger
        self._site = ledger.site
        self._jobs = ledger.job_records
        self._peers = peers
        self._clock = ledger.clock
        self._assignments = assignments
        self._stop = stop
        self._lock = threading.Lock()
        self._delivered: set[tuple[str, SiteId]] = set()

    def deliver(self, status: JobStatus, *, attempts: int = 3) -> bool:
        """Hand every site of the plan its steps; True once all have them.

        After a restart nothing counts as delivered, so assignments are sent
        again; the receivers ignore repeats.
        """
        plan = status.plan
        if plan is None or status.state.terminal:
            return True
        done = True
        for site in sorted(set(plan.assignments.values()), key=str):
            key = (status.job_id, site)
            with self._lock:
                if key in self._delivered:
                    continue
            assignment = StepAssignment(status.job_id, self._site, site, status.job, plan)
            try:
                if site == self._site:
                    self._assignments.receive(assignment, self._site)
                else:
                    peer = self._peers.get(site)
                    retrying(
                        partial(peer.assign, assignment),
                        f"hand steps of {status.job_id} to {site}",
                        attempts=attempts,
                        stop=self._stop,
                        clock=self._clock,
                    )
            except Unavailable as error:
                self._waiting(status.job_id, assignment.steps, site, error)
                done = False
                continue
            except MahiruError as error:
                self._fail(status.job_id, f"{site} refused its steps: {error.message}")
                return True
            with self._lock:
                self._delivered.add(key)
            for step in assignment.steps:  # the site that runs them says from now on
                self._ledger.waits.cleared(status.job_id, step)
        return done

    def delivered(self, job_id: JobId, site: SiteId) -> bool:
        """Whether `site` has had its steps of the job (since this site started)."""
        with self._lock:
            return (job_id, site) in self._delivered

    def _waiting(self, job_id: JobId, steps: list[str], site: SiteId, error: Unavailable) -> None:
        """Note on each step that its site cannot be handed it yet; log a new reason once."""
        reason = f"cannot hand over steps to {site}: {error.message}"
        tries = [self._ledger.note_wait(job_id, step, reason, site) for step in steps]
        logger.log(
            logging.INFO if min(tries, default=1) == 1 else logging.DEBUG,
            "cannot hand over steps yet: %s",
            error.message,
            extra={"job": job_id, "site": str(site), "attempts": max(tries, default=1)},
        )

    def _fail(self, job_id: JobId, reason: str) -> None:
        logger.warning("job failed: %s", reason, extra={"job": job_id})
        with contextlib.suppress(Conflict):  # it finished meanwhile
            self._jobs.set_job_state(job_id, JobState.FAILED, reason, self._clock.now())
