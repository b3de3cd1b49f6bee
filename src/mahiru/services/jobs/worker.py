"""The background worker that runs this site's steps, a bounded number at a time.

Every round it looks at the unfinished steps this site runs (a restarted
site finds its interrupted steps the same way) and hands each one that is
not busy or backing off to a thread pool. A step that must wait (producers
not done, a peer or the engine unavailable) is looked at again after a
delay that doubles up to `MAX_BACKOFF` seconds (`STEP_BACKOFF`), and the
loop is asked to wake by then. A step that waits only for steps of this
site is not polled: the one it waits for ends its wait when it finishes
(and a step that was being looked at while another finished is looked at
again at once), with `LOCAL_WAIT` as a safety net. An
unexpected (non-Mahiru) error is a bug or an unmapped failure, which
retrying rarely cures: the step is tried `max_unexpected_errors` times in a
row, then fails with the error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mahiru.errors import MahiruError
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import StepStatus
from mahiru.retry import Backoff
from mahiru.runtime.steps import LABEL_JOB
from mahiru.services.background import BackgroundLoop, Unexpected, guarded
from mahiru.services.jobs.environment import StepEnvironment
from mahiru.services.jobs.execution import StepExecution
from mahiru.services.jobs.ledger import JobLedger

logger = logging.getLogger("mahiru.site.jobs")

FIRST_BACKOFF = 0.25
MAX_BACKOFF = 2.0
MAX_UNEXPECTED_ERRORS = 3
STEP_BACKOFF = Backoff(FIRST_BACKOFF, cap=MAX_BACKOFF)
#: How long a step that waits only for steps of this site waits before it is looked at
#: again, unless one of them finishes first (which wakes it): a safety net, not a poll.
LOCAL_WAIT = 30.0


class StepWorker:
    """Runs the steps handed to this site in the background, while started."""

    def __init__(
        self,
        ledger: JobLedger,
        environment: StepEnvironment,
        execution: StepExecution,
        stopping: threading.Event,
        *,
        max_parallel: int = 4,
        interval: float = 2.0,
        max_unexpected_errors: int = MAX_UNEXPECTED_ERRORS,
        on_step_done: Callable[[], object] = lambda: None,
    ) -> None:
        self._ledger = ledger
        self._environment = environment
        self._stopping = stopping  # what the steps' waits watch, set when the worker stops
        self._max_unexpected_errors = max_unexpected_errors
        #: Called after a step finished (the coordinator looks at its job at once).
        self._on_step_done = on_step_done
        self.loop = BackgroundLoop(
            "mahiru-steps", self._round, interval, logger=logger, context={"site": str(ledger.site)}
        )
        self.execution = execution
        self._pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="mahiru-step")
        self._lock = threading.Lock()
        self._busy: set[tuple[str, str]] = set()
        # Per waiting step: (monotonic time it may be looked at again, times it waited in a row).
        self._backoff: dict[tuple[str, str], tuple[float, int]] = {}
        self._errors: dict[tuple[str, str], int] = {}  # unexpected errors in a row, per step
        self._finished = 0  # steps finished so far: a wait that overlapped one is cut short

    def start(self) -> None:
        """Remove step containers an earlier run of this site left, then start working."""
        self._stopping.clear()
        self._remove_leftovers()
        self.loop.start()

    def wake(self) -> None:
        """Look at the steps now (new steps were handed over, or something changed)."""
        self.loop.wake()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop: running step containers are stopped and their steps redone after a restart."""
        self._stopping.set()
        self.loop.stop(timeout)
        self.stop_containers()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def stop_containers(self, job_id: JobId | None = None) -> int:
        """Stop this site's step containers (of one job, or all); how many there were."""
        labels = self._environment.labels(self._ledger.site)
        if job_id is not None:
            labels[LABEL_JOB] = job_id
        runner = self._environment.runner
        try:
            containers = runner.list_step_containers(labels)
            for container in containers:
                runner.stop_container(container.id)
        except MahiruError as error:
            logger.warning("cannot stop step containers: %s", error.message, extra=labels)
            return 0
        return len(containers)

    def _remove_leftovers(self) -> None:
        stopped = self.stop_containers()
        if stopped:
            logger.info(
                "removed step containers left by an earlier run",
                extra={"site": str(self._ledger.site), "containers": stopped},
            )

    def _round(self) -> None:
        """Hand each unfinished step of this site that is neither busy nor waiting to the pool."""
        now = self._ledger.clock.monotonic()
        for status in self._ledger.job_records.unfinished_steps(self._ledger.site):
            key = (status.job_id, status.step)
            with self._lock:
                if key in self._busy:
                    continue
                until = self._backoff.get(key, (0.0, 0))[0]
                if until > now:
                    # Woken by then, whatever woke the loop before.
                    self.loop.wake_after(until - now)
                    continue
                self._busy.add(key)
            self._pool.submit(self._work, status)

    def _work(self, status: StepStatus) -> None:
        key = (status.job_id, status.step)
        finished = False
        with self._lock:
            finished_before = self._finished
        try:
            outcome = guarded(lambda: self.execution.advance(status))
            if isinstance(outcome, Unexpected):
                finished = self._unexpected(status, outcome.error)
            else:
                finished = outcome
                self._errors.pop(key, None)
        finally:
            with self._lock:
                self._busy.discard(key)
                if finished:
                    self._finished += 1
                    self._backoff.pop(key, None)
                    self._errors.pop(key, None)
                    # The steps that wait for this one are looked at in the round this
                    # wakes, not after their wait.
                    for waiter in self.execution.waiting_for(status.job_id, status.step):
                        self._backoff.pop(waiter, None)
                elif self._finished != finished_before:
                    # A step finished while this one was looked at (perhaps the one it
                    # waits for, after it looked): look again at once.
                    self._backoff.pop(key, None)
                    self.loop.wake()
                else:
                    waits = self._backoff.get(key, (0.0, 0))[1] + 1
                    delay = STEP_BACKOFF.delay(waits)
                    if self.execution.waits_here(status.job_id, status.step):
                        delay = LOCAL_WAIT  # woken when a step it waits for finishes
                    self._backoff[key] = (self._ledger.clock.monotonic() + delay, waits)
                    self.loop.wake_after(delay)
            if finished:
                self.loop.wake()
                self._on_step_done()

    def _unexpected(self, status: StepStatus, error: Exception) -> bool:
        """Log an unexpected error; fail the step once it happened too often. True if failed."""
        key = (status.job_id, status.step)
        context = {"job": status.job_id, "step": status.step}
        count = self._errors.get(key, 0) + 1
        self._errors[key] = count
        logger.error(
            "step work failed unexpectedly (%d of %d)",
            count,
            self._max_unexpected_errors,
            exc_info=error,
            extra=context,
        )
        if count < self._max_unexpected_errors:
            return False
        # The type only: an error's text can name the step's files (the log has it).
        reason = f"unexpected error ({count} attempts): {type(error).__name__}"
        failing = guarded(lambda: self.execution.fail(status, reason))
        if isinstance(failing, Unexpected):
            # The database itself may be what fails; the step is tried again later.
            logger.error("cannot fail the step", exc_info=failing.error, extra=context)
            return False
        return True
