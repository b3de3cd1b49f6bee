"""Running one step at this site: policy re-check, readiness, inputs, container, results.

`StepExecution.advance` moves a step of this site as far as it can go now,
and says whether it is finished or should be tried again later (its
producers are not done yet, or a peer or the container engine is
unavailable). A step interrupted by a restart is redone from the work of the
state it is in; it never moves backwards. A step that has met nothing but
Unavailable for `unavailable_deadline` seconds fails, saying what it waited for;
one whose input awaits its reviewer (AwaitingReview) waits without a deadline,
and a rejected input (ReleaseRejected) fails it. Once a step's outputs are
stored, the reviews that rules covering them demand are asked for.

Whether a step may run and can start is `readiness.StepReadiness`'s to say;
gathering its inputs and running its container is `step_container.StepContainer`'s.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Iterable

from mahiru.errors import AwaitingReview, Conflict, MahiruError, Unavailable, path_redactor
from mahiru.model.identifiers import SiteId
from mahiru.model.jobs import StepState, StepStatus, step_inputs
from mahiru.model.receipts import ReceiptInput
from mahiru.runtime.outputs import cut
from mahiru.services.jobs.environment import StepEnvironment
from mahiru.services.jobs.ledger import JobLedger, KnownJob
from mahiru.services.jobs.readiness import Blocked, StepReadiness
from mahiru.services.jobs.receipts import receipt_item
from mahiru.services.jobs.release_reviews import ReleaseReviews
from mahiru.services.jobs.step_container import StepContainer, StepInputs
from mahiru.services.jobs.storing import ResultStore
from mahiru.services.jobs.waits import waited_site
from mahiru.storage import Database

logger = logging.getLogger("mahiru.site.jobs")

#: How long a step keeps retrying while a peer or the engine is unavailable (seconds).
UNAVAILABLE_DEADLINE = 600.0


class StepExecution:
    """Advances the steps this site runs (one call per step at a time)."""

    def __init__(
        self,
        ledger: JobLedger,
        readiness: StepReadiness,
        container: StepContainer,
        results: ResultStore,
        environment: StepEnvironment,
        stop: threading.Event,
        reviews: ReleaseReviews,
        database: Database,
        *,
        unavailable_deadline: float = UNAVAILABLE_DEADLINE,
    ) -> None:
        self._ledger = ledger
        self._database = database
        self._readiness = readiness
        self._container = container
        self._results = results
        self._environment = environment
        self._stop = stop
        self._reviews = reviews
        # Failure reasons reach the submitter's users and other sites: no paths of ours.
        data = environment.work_dir.parent
        self._redact = path_redactor(data.resolve(), data)
        #: Seconds a step may meet only Unavailable before it fails (read at each attempt).
        self.unavailable_deadline = unavailable_deadline
        # Since when (monotonic) each step has met nothing but Unavailable; in memory only,
        # so a restarted site gives its steps the whole deadline again.
        self._unavailable_since: dict[tuple[str, str], float] = {}
        # The steps that last waited only for steps of this site, with those steps.
        self._waiting_here: dict[tuple[str, str], frozenset[str]] = {}

    def waits_here(self, job_id: str, step: str) -> bool:
        """Whether the step last waited only for steps of its job that run at this site
        (the worker looks at it again when one of those finishes, not on a timer)."""
        return (job_id, step) in self._waiting_here

    def waiting_for(self, job_id: str, step: str) -> list[tuple[str, str]]:
        """The steps that last waited for `step` (of job `job_id`, run here) to finish."""
        return [
            key
            for key, producers in list(self._waiting_here.items())
            if key[0] == job_id and step in producers
        ]

    def advance(self, status: StepStatus) -> bool:
        """Move the step on; True once it is finished, False to try again later."""
        key = (status.job_id, status.step)
        self._waiting_here.pop(key, None)
        try:
            finished = self._guarded_advance(status)
        finally:
            # Whatever the try did (a new state, a new wait): whoever waits on the job's
            # steps here looks again.
            self._ledger.changes.changed(status.job_id)
        if finished:
            self._ledger.waits.cleared(status.job_id, status.step)
            self._readiness.settled(status.job_id, status.step)
        return finished

    def _guarded_advance(self, status: StepStatus) -> bool:
        key = (status.job_id, status.step)
        try:
            finished = self._advance_once(status)
        except Unavailable as error:
            finished = self._unavailable(status, error)
        except AwaitingReview as waiting:
            # An input's reviewer has not decided yet: that may take days, so no
            # deadline; the step fetches it again on each later attempt.
            self._wait(status, waiting.message, waited_site(waiting))
            self._unavailable_since.pop(key, None)
            finished = False
        else:
            self._unavailable_since.pop(key, None)
        return finished

    def _wait(self, status: StepStatus, reason: str, site: SiteId | None = None) -> None:
        """Note what the step's try met; the log says it once, while it is new."""
        tries = self._ledger.note_wait(status.job_id, status.step, reason, site)
        logger.log(
            logging.INFO if tries == 1 else logging.DEBUG,
            "step waits: %s",
            reason,
            extra={"job": status.job_id, "step": status.step, "attempts": tries},
        )

    def fail(self, status: StepStatus, reason: str) -> None:
        """Fail the step with `reason` (unless it finished meanwhile)."""
        self._unavailable_since.pop((status.job_id, status.step), None)
        self._ledger.waits.cleared(status.job_id, status.step)
        self._readiness.settled(status.job_id, status.step)
        known = self._ledger.known_job(status.job_id)
        self._set(known, status.step, StepState.FAILED, reason=reason)
        self._ledger.changes.changed(status.job_id)

    def _unavailable(self, status: StepStatus, error: Unavailable) -> bool:
        """Wait for an unavailable peer or engine, up to the deadline; then fail the step."""
        key = (status.job_id, status.step)
        context = {"job": status.job_id, "step": status.step, "site": str(self._ledger.site)}
        now = self._ledger.clock.monotonic()
        since = self._unavailable_since.setdefault(key, now)
        if now - since < self.unavailable_deadline:
            self._wait(status, self._redact(error.message), waited_site(error))
            return False
        reason = (
            f"gave up after retrying for {now - since:.0f} s (limit"
            f" {self.unavailable_deadline:g} s): {error.message}"
        )
        logger.warning("step failed: %s", reason, extra=context)
        self.fail(status, reason)
        return True

    def _advance_once(self, status: StepStatus) -> bool:
        ledger = self._ledger
        known = ledger.known_job(status.job_id)
        context = {"job": status.job_id, "step": status.step, "site": str(ledger.site)}
        try:
            return self._advance(known, status)
        except (Unavailable, AwaitingReview):
            raise  # retried by `advance` (up to the deadline, for Unavailable)
        except Conflict as error:
            # Its state changed meanwhile (cancelled, most likely): nothing more to do.
            logger.info("step stopped: %s", error.message, extra=context)
            return True
        except Blocked as blocked:
            self._set(known, status.step, StepState.CANCELLED, reason=str(blocked))
            return True
        except MahiruError as error:
            logger.warning("step failed: %s", error.message, extra=context)
            self._set(known, status.step, StepState.FAILED, reason=error.message)
            return True

    def _set(
        self,
        known: KnownJob,
        step: str,
        state: StepState,
        *,
        reason: str | None = None,
        exit_code: int | None = None,
        log_tail: str | None = None,
    ) -> None:
        with contextlib.suppress(Conflict):  # finished meanwhile (cancelled): that stands
            self._ledger.job_records.set_step_state(
                known.job_id,
                step,
                state,
                self._ledger.now(),
                reason=None if reason is None else self._redact(reason),
                exit_code=exit_code,
                log_tail=log_tail,
            )

    def _advance(self, known: KnownJob, status: StepStatus) -> bool:
        ledger, step = self._ledger, status.step
        decision = self._readiness.decision(known, step)
        if not decision.allowed:
            reason = "this site's policy does not permit the step here: " + "; ".join(
                decision.failures()
            )
            logger.warning(
                "step failed: %s",
                reason,
                extra={"job": known.job_id, "step": step, "site": str(ledger.site)},
            )
            self._set(known, step, StepState.FAILED, reason=reason)
            return True
        state = status.state
        if state is StepState.WAITING:
            if self._readiness.reusable(known, step):
                self._set(known, step, StepState.REUSED)
                return True
            if not self._readiness.producers_done(known, step):
                producers = known.job.workflow.predecessors(step)
                if all(known.plan.assignments[p] == ledger.site for p in producers):
                    self._waiting_here[(known.job_id, step)] = frozenset(producers)
                self._wait(status, _producers_reason(known, producers))
                return False
            if self._fetches(known, step):  # shown as fetching while its inputs come
                ledger.job_records.set_step_state(
                    known.job_id, step, StepState.FETCHING, ledger.now()
                )
                ledger.changes.changed(known.job_id)
                state = StepState.FETCHING
            ledger.waits.cleared(known.job_id, step)
        work = self._environment.work_dir / known.job_id / step
        shutil.rmtree(work, ignore_errors=True)
        try:
            inputs = self._container.gather(known, step)
            ledger.waits.moved_on(known.job_id, step)  # every input is here
            try:
                if state in (StepState.WAITING, StepState.FETCHING):
                    self._start(known, step, state)
                    state = StepState.RUNNING
                # The outputs live in room that cannot outgrow the limit, until packaged.
                environment = self._environment
                with environment.runner.output_space(
                    work / "outputs", environment.limits.max_output_bytes
                ):
                    return self._run_and_package(known, step, state, inputs, decision.rule_ids())
            finally:
                self._container.release(inputs)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            with contextlib.suppress(OSError):  # other steps of the job may still work there
                work.parent.rmdir()

    def _fetches(self, known: KnownJob, step: str) -> bool:
        """Whether an input of the step is held at another site (fetched, or read live)."""
        needed = step_inputs(known.job, known.plan, step, submitter_site=known.submitter_site)
        return any(item.site != self._ledger.site for item in needed)

    def _start(self, known: KnownJob, step: str, state: StepState) -> None:
        """Move the step to running; one that fetched nothing passes through fetching in
        the same transaction (both changes recorded, one commit)."""
        ledger = self._ledger
        with self._database.transaction():
            if state is StepState.WAITING:
                ledger.job_records.set_step_state(
                    known.job_id, step, StepState.FETCHING, ledger.now()
                )
            ledger.job_records.set_step_state(known.job_id, step, StepState.RUNNING, ledger.now())
        ledger.changes.changed(known.job_id)  # committed: whoever waits on the job looks

    def _run_and_package(
        self,
        known: KnownJob,
        step: str,
        state: StepState,
        inputs: StepInputs,
        rules: list[str],
    ) -> bool:
        """Run the step's container and package its outputs; True once the step is done."""
        ledger = self._ledger
        result, bases = self._container.run(
            known, step, inputs, started=lambda: ledger.waits.moved_on(known.job_id, step)
        )
        if self._stop.is_set():
            return False  # the site is stopping: redo the step after the restart
        if not result.succeeded:
            # The log stays here, for this site's administrator; the submitter
            # sees it only where it may use the step's outputs (Egress.step_views).
            logger.warning(
                "step failed: %s",
                result.reason,
                extra={"job": known.job_id, "step": step, "log_tail": result.log_tail},
            )
            self._set(
                known,
                step,
                StepState.FAILED,
                reason=result.reason,
                exit_code=result.exit_code,
                log_tail="\n".join(result.log_tail),
            )
            return True

        def storing() -> None:
            # A succeeded step's log is kept as a failed one's is, under the same gate.
            # Moved to storing in the transaction that stores its results (both changes
            # recorded, one commit): packaging takes a fraction of a second.
            if state is StepState.RUNNING:
                ledger.job_records.set_step_state(
                    known.job_id,
                    step,
                    StepState.STORING,
                    ledger.now(),
                    exit_code=result.exit_code,
                    log_tail="\n".join(result.log_tail),
                )

        try:
            images = self._results.package(self._environment, known, step, result.outputs, bases)
        except Unavailable:
            raise
        except MahiruError as error:
            # What went wrong names the step's files (its own choice of text, which
            # can carry its data): that stays in this site's log, cut short.
            logger.warning(
                "step outputs could not be packed",
                extra={"job": known.job_id, "step": step, "error": cut(error.message)},
            )
            self._set(
                known,
                step,
                StepState.FAILED,
                reason="the step's outputs could not be packed into data images",
                exit_code=result.exit_code,
            )
            return True
        ran_on = [
            ReceiptInput(receipt_item(n), str(n.asset), inputs.digests[n.item])
            for n in inputs.needed
            if n.item in inputs.digests
        ]
        self._results.record_step(known, step, images, ran_on, rules, inputs.chains, first=storing)
        try:
            self._reviews.requested_at_store(known, step, result.outputs, images)
        except (MahiruError, OSError) as error:
            # The step is done; a review not asked for now is asked for at release.
            logger.warning(
                "reviews not asked for at store time: %s",
                cut(str(error)),
                extra={"job": known.job_id, "step": step},
            )
        logger.info(
            "step succeeded",
            extra={"job": known.job_id, "step": step, "seconds": result.duration_seconds},
        )
        return True


def _producers_reason(known: KnownJob, producers: Iterable[str]) -> str:
    """What a step waits for while the steps it reads from are not done."""
    named = ", ".join(f"{p} (at {known.plan.assignments[p]})" for p in sorted(producers))
    return f"waits for the steps it reads from to finish: {named}"
