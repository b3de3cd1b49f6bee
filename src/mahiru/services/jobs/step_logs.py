"""Steps' logs: followed as they are written, and removed once older than the site keeps them.

Every step's log is kept, bounded (its last lines, `LOG_TAIL_CHARS` at most),
with its status, whether it succeeded or failed; it reaches a user under the
same decision as the step's other output (the egress gate's step views: only
where the job's party may use every output of the step). `StepLogs.follow`
gives a running step's log as it is written, under that same decision, taken
before the first byte: a step that runs here is read from the runner; one
that runs at another site is followed there (`for_peer`, that site deciding
too), or shown when it ends if that site cannot be followed.

`LogRetention` removes the kept logs of steps that finished longer ago than
the site's `step_log_retention_days`, putting `LOG_PRUNED` in their place.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from mahiru.clock import Clock
from mahiru.errors import MahiruError, NotFound, NotKnown
from mahiru.model.identifiers import JobId, PartyId, SiteId
from mahiru.model.jobs import StepState, StepStatus
from mahiru.model.people import Person
from mahiru.model.workflow import Job
from mahiru.runtime.steps import LABEL_INSTANCE, step_labels
from mahiru.services.jobs.egress import Egress
from mahiru.services.jobs.environment import StepEnvironment
from mahiru.services.jobs.ledger import JobLedger
from mahiru.services.jobs.peers import JobPeers
from mahiru.services.jobs.submission import JobSubmissions

logger = logging.getLogger("mahiru.site.jobs")

#: The states in which a step's log may still grow.
UNENDED = frozenset({StepState.WAITING, StepState.FETCHING, StepState.RUNNING})
#: How often a follower looks for more of the log (seconds).
FOLLOW_POLL_SECONDS = 0.25
#: The longest a follower may ask to follow one step for (seconds).
MAX_FOLLOW_SECONDS = 3600.0
#: How often the retention looks for logs to remove (seconds).
PRUNE_EVERY_SECONDS = 3600.0


class StepLogs:
    """Reads the logs of a job's steps as they grow, for the users who may see them, and for
    the job's submitter's site those of its steps that run here."""

    def __init__(
        self,
        ledger: JobLedger,
        environment: StepEnvironment,
        submissions: JobSubmissions,
        egress: Egress,
        peers: JobPeers,
        stopping: threading.Event,
    ) -> None:
        self._ledger = ledger
        self._environment = environment
        self._submissions = submissions
        self._egress = egress
        self._peers = peers
        self._stopping = stopping

    def follow(
        self, job_id: JobId, step: str, person: Person, seconds: float = MAX_FOLLOW_SECONDS
    ) -> Iterator[bytes]:
        """The log of `step` of a job `person` sees, as it is written, until the step ends,
        `seconds` pass (at most MAX_FOLLOW_SECONDS) or the site stops.

        Checked before it starts: NotKnown for a job `person` does not see, NotFound
        for a step the job does not have, PermissionDenied (saying why) where the
        job's party may not use every output of the step. A step that runs at
        another site is followed there (that site decides too). Lines starting with
        `[mahiru]` say what the log itself cannot: where the step runs, that it
        ended, that following stopped before it did. An empty piece means nothing
        new yet: the caller asks again after a pause (`paced`, or the route's), so
        no thread waits here while the step is quiet.
        """
        status, views = self._submissions.get(job_id, person)
        if step not in {view.step for view in views}:
            known = ", ".join(view.step for view in views)
            raise NotFound(f"job {job_id} has no step {step!r} (steps: {known})")
        job, party = status.job, status.submitter
        self._egress.log_release(job, step, party)
        deadline = self._deadline(seconds)
        site = self._ledger.job_records.step_status(job_id, step).site
        if site == self._ledger.site:
            return self._here(job, job_id, step, party, deadline)
        return self._elsewhere(job, job_id, step, site, deadline)

    def for_peer(
        self, job_id: JobId, step: str, caller: SiteId, seconds: float = MAX_FOLLOW_SECONDS
    ) -> Iterator[bytes]:
        """The log of `step`, run here, of a job submitted at `caller`, as it is written
        (`follow` there, for its user). Any other site hears what it hears for a job
        that does not exist; a step that does not run here is NotFound."""
        try:
            known = self._ledger.known_job(job_id)
        except NotFound:
            raise NotKnown("job", job_id) from None
        if caller != known.submitter_site:
            raise NotKnown("job", job_id)
        if known.plan.assignments.get(step) != self._ledger.site:
            raise NotFound(f"step {step!r} of job {job_id} does not run at this site")
        self._egress.log_release(known.job, step, known.job.submitter)
        return self._here(known.job, job_id, step, known.job.submitter, self._deadline(seconds))

    def _deadline(self, seconds: float) -> float:
        return self._ledger.clock.monotonic() + min(max(seconds, 0.0), MAX_FOLLOW_SECONDS)

    def _here(
        self, job: Job, job_id: JobId, step: str, party: PartyId, deadline: float
    ) -> Iterator[bytes]:
        """The log of a step that runs here, read from the runner while it runs."""
        clock = self._ledger.clock
        sent = 0
        handle: str | None = None
        while True:
            current = self._ledger.job_records.step_status(job_id, step)
            handle = handle or self._container(job_id, step)
            if handle is not None:
                chunk = self._environment.runner.step_output(handle, sent) or b""
                sent += len(chunk)
                if chunk:
                    yield chunk
            if current.state not in UNENDED:
                kept = self._kept(job, current, party) if sent == 0 else b""
                if kept:  # it ended before it was found running: what was kept of it
                    yield kept
                yield _note(f"step {step} is {current.state.value}")
                return
            if self._stopping.is_set() or clock.monotonic() >= deadline:
                yield _note(f"stopped following; step {step} is {current.state.value}")
                return
            yield b""  # nothing new yet

    def _elsewhere(
        self, job: Job, job_id: JobId, step: str, site: SiteId, deadline: float
    ) -> Iterator[bytes]:
        """The log of a step that runs at `site`, followed there once it is handed over; if
        that site cannot be followed, shown when it reports the step's end."""
        yield _note(f"step {step} runs at {site}")
        clock = self._ledger.clock
        followed = True
        while True:
            current = self._ledger.job_records.step_status(job_id, step)
            if current.state not in UNENDED:
                yield self._kept(job, current, job.submitter)
                yield _note(f"step {step} is {current.state.value}")
                return
            if self._stopping.is_set() or clock.monotonic() >= deadline:
                yield _note(f"stopped following; step {step} is {current.state.value}")
                return
            if followed:
                try:
                    peer = self._peers.get(site)
                    left = max(deadline - clock.monotonic(), 1.0)
                    # The other site's stream waits while the step is quiet: this holds
                    # the caller's thread until the step ends there (bounded by `left`).
                    yield from peer.follow_log(job_id, step, left)
                    return
                except NotFound:
                    pass  # not handed over yet: asked again after the pause
                except MahiruError as error:
                    followed = False
                    logger.info(
                        "cannot follow a step's log at its site: %s",
                        error.message,
                        extra={"job": job_id, "step": step, "site": str(site)},
                    )
                    yield _note(f"cannot follow it there ({error.message}): shown when it ends")
            yield b""  # nothing new yet

    def _container(self, job_id: JobId, step: str) -> str | None:
        """The runner's handle on the step's container (the newest, if it ran more than once)."""
        environment = self._environment
        labels = step_labels(site=str(self._ledger.site), job=job_id, step=step)
        labels[LABEL_INSTANCE] = environment.instance
        found = environment.runner.list_step_containers(labels)
        return found[-1].id if found else None

    def _kept(self, job: Job, status: StepStatus, party: PartyId) -> bytes:
        """The log kept with the step's status, as `party` may see it."""
        (view,) = self._egress.step_views(job, [status], party)
        kept = view.status.log_tail
        if not kept:
            return b""
        return (kept if kept.endswith("\n") else kept + "\n").encode()


def paced(pieces: Iterator[bytes], clock: Clock) -> Iterator[bytes]:
    """`pieces` of a followed log without the empty ones, pausing FOLLOW_POLL_SECONDS on
    `clock` at each (for a caller with a thread of its own to wait in)."""
    for piece in pieces:
        if piece:
            yield piece
        else:
            clock.sleep(FOLLOW_POLL_SECONDS)


def _note(text: str) -> bytes:
    return f"[mahiru] {text}\n".encode()


@dataclass
class LogRetention:
    """Removes the kept logs of steps that finished more than `days` ago, at most once
    every PRUNE_EVERY_SECONDS (`prune_when_due`, called by a background loop)."""

    ledger: JobLedger
    days: float
    _last: float | None = None

    def prune_when_due(self) -> int:
        """Remove the logs that are too old, if the last look was long enough ago; how many."""
        clock = self.ledger.clock
        if self._last is not None and clock.monotonic() - self._last < PRUNE_EVERY_SECONDS:
            return 0
        self._last = clock.monotonic()
        return self.prune()

    def prune(self) -> int:
        """Remove the kept logs of steps that finished more than `days` ago; how many."""
        before = self.ledger.now() - timedelta(days=self.days)
        pruned = self.ledger.job_records.prune_step_logs(before)
        if pruned:
            logger.info(
                "step logs removed", extra={"steps": pruned, "finished_before": before.isoformat()}
            )
        return pruned
