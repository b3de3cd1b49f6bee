"""Steps' logs: followed as they are written, and removed once older than the site keeps them.

Every step's log is kept, bounded (its last lines, `LOG_TAIL_CHARS` at most),
with its status, whether it succeeded or failed; it reaches a user under the
same decision as the step's other output (the egress gate's step views: only
where the job's party may use every output of the step). `StepLogs.follow`
gives a running step's log as it is written, under that same decision, taken
before the first byte: a step that runs here is read from the runner; one
that runs at another site is shown when it ends, as that site reports it.

`LogRetention` removes the kept logs of steps that finished longer ago than
the site's `step_log_retention_days`, putting `LOG_PRUNED` in their place.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from mahiru.errors import NotFound
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import StepState
from mahiru.model.people import Person
from mahiru.runtime.steps import LABEL_INSTANCE, step_labels
from mahiru.services.jobs.egress import Egress
from mahiru.services.jobs.environment import StepEnvironment
from mahiru.services.jobs.ledger import JobLedger
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
    """Reads the logs of a job's steps for the users who may see them, as they grow."""

    def __init__(
        self,
        ledger: JobLedger,
        environment: StepEnvironment,
        submissions: JobSubmissions,
        egress: Egress,
        stopping: threading.Event,
    ) -> None:
        self._ledger = ledger
        self._environment = environment
        self._submissions = submissions
        self._egress = egress
        self._stopping = stopping

    def follow(
        self, job_id: JobId, step: str, person: Person, seconds: float = MAX_FOLLOW_SECONDS
    ) -> Iterator[bytes]:
        """The log of `step` of a job `person` sees, as it is written, until the step ends,
        `seconds` pass (at most MAX_FOLLOW_SECONDS) or the site stops.

        Checked before it starts: NotKnown for a job `person` does not see, NotFound
        for a step the job does not have, PermissionDenied (saying why) where the
        job's party may not use every output of the step. Lines starting with
        `[mahiru]` say what the log itself cannot: that the step runs elsewhere,
        that it ended, that following stopped before it did.
        """
        status, views = self._submissions.get(job_id, person)
        if step not in {view.step for view in views}:
            known = ", ".join(view.step for view in views)
            raise NotFound(f"job {job_id} has no step {step!r} (steps: {known})")
        self._egress.log_release(status.job, step, status.submitter)
        limit = min(max(seconds, 0.0), MAX_FOLLOW_SECONDS)
        return self._read(job_id, step, person, self._ledger.clock.monotonic() + limit)

    def _read(self, job_id: JobId, step: str, person: Person, deadline: float) -> Iterator[bytes]:
        clock, here = self._ledger.clock, self._ledger.site
        sent = 0
        handle: str | None = None
        told_elsewhere = False
        while True:
            current = self._ledger.job_records.step_status(job_id, step)
            if current.site != here and not told_elsewhere:
                told_elsewhere = True
                yield _note(f"step {step} runs at {current.site}: its log is shown when it ends")
            if current.site == here:
                handle = handle or self._container(job_id, step)
                if handle is not None:
                    chunk = self._environment.runner.step_output(handle, sent) or b""
                    sent += len(chunk)
                    if chunk:
                        yield chunk
            if current.state not in UNENDED:
                kept = self._kept(job_id, step, person) if sent == 0 else b""
                if kept:  # it ended before it was found running: what was kept of it
                    yield kept
                yield _note(f"step {step} is {current.state.value}")
                return
            if self._stopping.is_set() or clock.monotonic() >= deadline:
                yield _note(f"stopped following; step {step} is {current.state.value}")
                return
            clock.sleep(FOLLOW_POLL_SECONDS)

    def _container(self, job_id: JobId, step: str) -> str | None:
        """The runner's handle on the step's container (the newest, if it ran more than once)."""
        environment = self._environment
        labels = step_labels(site=str(self._ledger.site), job=job_id, step=step)
        labels[LABEL_INSTANCE] = environment.instance
        found = environment.runner.list_step_containers(labels)
        return found[-1].id if found else None

    def _kept(self, job_id: JobId, step: str, person: Person) -> bytes:
        """The log kept with the step's status, as the step views show it to `person`."""
        views = {view.step: view.status for view in self._submissions.get(job_id, person)[1]}
        kept = views[step].log_tail
        if not kept:
            return b""
        return (kept if kept.endswith("\n") else kept + "\n").encode()


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
