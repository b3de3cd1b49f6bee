"""Running one step at this site: policy re-check, readiness, inputs, container, results.

`StepExecution.advance` moves a step of this site as far as it can go now,
and says whether it is finished or should be tried again later (its
producers are not done yet, or a peer or the container engine is
unavailable). A step interrupted by a restart is redone from the work of the
state it is in; it never moves backwards. A step that has met nothing but
Unavailable for `unavailable_deadline` seconds fails, saying what it waited for.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from dataclasses import dataclass

from mahiru.errors import (
    Conflict,
    InvalidInput,
    MahiruError,
    NotFound,
    Unavailable,
    path_redactor,
)
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs import StepInput, StepState, StepStatus, step_inputs, step_results
from mahiru.model.receipts import ReceiptChain, ReceiptInput
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.runtime.outputs import cut
from mahiru.runtime.steps import LABEL_INSTANCE, ContainerOutcome, step_labels
from mahiru.services.jobs.context import JobContext, KnownJob
from mahiru.services.jobs.fetching import InputFetcher
from mahiru.services.jobs.images import LoadedImages
from mahiru.services.jobs.live_channel import LiveChannels
from mahiru.services.jobs.receipts import Receipts, receipt_item
from mahiru.services.jobs.storing import package_outputs, result_stored, store_step_results
from mahiru.services.site.policy_view import Concerning

logger = logging.getLogger("mahiru.site.jobs")

#: How long a step keeps retrying while a peer or the engine is unavailable (seconds).
UNAVAILABLE_DEADLINE = 600.0


@dataclass(frozen=True, slots=True)
class _Made:
    """What a step runs on: its inputs, their digests and receipt chains, and the ids of
    the rules that allowed it here (all of which its receipts record)."""

    needed: list[StepInput]
    digests: dict[WorkflowItem, str]
    chains: list[ReceiptChain]
    rules: list[str]


class _Blocked(Exception):
    """A step this one needs failed or was cancelled: this one cannot run."""


class StepExecution:
    """Advances the steps this site runs (one call per step at a time)."""

    def __init__(
        self,
        ctx: JobContext,
        fetcher: InputFetcher,
        images: LoadedImages,
        stop: threading.Event,
        *,
        unavailable_deadline: float = UNAVAILABLE_DEADLINE,
    ) -> None:
        self._ctx = ctx
        self._fetcher = fetcher
        self._images = images
        self._stop = stop
        self._live = LiveChannels(ctx)
        self._receipts = Receipts(ctx)
        # Failure reasons reach the submitter's users and other sites: no paths of ours.
        data = ctx.work_dir.parent
        self._redact = path_redactor(data.resolve(), data)
        #: Seconds a step may meet only Unavailable before it fails (read at each attempt).
        self.unavailable_deadline = unavailable_deadline
        # Since when (monotonic) each step has met nothing but Unavailable; in memory only,
        # so a restarted site gives its steps the whole deadline again.
        self._unavailable_since: dict[tuple[str, str], float] = {}

    def advance(self, status: StepStatus) -> bool:
        """Move the step on; True once it is finished, False to try again later."""
        key = (status.job_id, status.step)
        try:
            finished = self._advance_once(status)
        except Unavailable as error:
            finished = self._unavailable(status, error)
        else:
            self._unavailable_since.pop(key, None)
        if finished:
            self._settled(key)
        return finished

    def fail(self, status: StepStatus, reason: str) -> None:
        """Fail the step with `reason` (unless it finished meanwhile)."""
        self._unavailable_since.pop((status.job_id, status.step), None)
        self._settled((status.job_id, status.step))
        self._set(self._ctx.known_job(status.job_id), status.step, StepState.FAILED, reason=reason)

    def _settled(self, key: tuple[str, str]) -> None:
        """The step is done here: its run decision need not be remembered any more."""
        self._ctx.policy.forget(job=key[0], step=key[1])

    def _unavailable(self, status: StepStatus, error: Unavailable) -> bool:
        """Wait for an unavailable peer or engine, up to the deadline; then fail the step."""
        key = (status.job_id, status.step)
        context = {"job": status.job_id, "step": status.step, "site": str(self._ctx.site)}
        now = self._ctx.clock.monotonic()
        since = self._unavailable_since.setdefault(key, now)
        if now - since < self.unavailable_deadline:
            logger.info("step waits: %s", error.message, extra=context)
            return False
        reason = (
            f"gave up after retrying for {now - since:.0f} s (limit"
            f" {self.unavailable_deadline:g} s): {error.message}"
        )
        logger.warning("step failed: %s", reason, extra=context)
        self.fail(status, reason)
        return True

    def _advance_once(self, status: StepStatus) -> bool:
        ctx = self._ctx
        known = ctx.known_job(status.job_id)
        context = {"job": status.job_id, "step": status.step, "site": str(ctx.site)}
        try:
            return self._advance(known, status)
        except Unavailable:
            raise  # retried by `advance`, up to the deadline
        except Conflict as error:
            # Its state changed meanwhile (cancelled, most likely): nothing more to do.
            logger.info("step stopped: %s", error.message, extra=context)
            return True
        except _Blocked as blocked:
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
            self._ctx.jobs.set_step_state(
                known.job_id,
                step,
                state,
                self._ctx.now(),
                reason=None if reason is None else self._redact(reason),
                exit_code=exit_code,
                log_tail=log_tail,
            )

    def _may_run(self, known: KnownJob, step: str) -> Decision:
        """This site's own decision on running `step`, taken once per set of rules in force.

        Taken at the step's first look (so before it leaves WAITING) and
        again only after the rules changed: a step that waits an hour for its
        inputs is decided, and audited, once. A denial is never remembered;
        it is re-checked after replicating, since the submitter planned with
        its replica and ours may lag behind it by a replication round.
        """
        site = self._ctx.site

        def evaluate(engine: PolicyEngine) -> Decision:
            # The job as a whole as planned: every step at its site (this step here)
            # and outputs the submitter may use; a site never runs a step of a job
            # its policy refuses.
            permissions = engine.job_permissions(known.job)
            if known.plan.assignments.get(step) != site:
                return engine.may_run_step(permissions, step, site)
            return engine.check_job(permissions, known.plan.assignments, known.submitter_site)

        about = Concerning(
            "run step",
            str(known.submitter_site),
            party=str(known.job.submitter),
            job=known.job_id,
            step=step,
        )
        return self._ctx.policy.decide_once(evaluate, about, basis=known)

    def _advance(self, known: KnownJob, status: StepStatus) -> bool:
        ctx, step = self._ctx, status.step
        decision = self._may_run(known, step)
        if not decision.allowed:
            reason = "this site's policy does not permit the step here: " + "; ".join(
                decision.failures()
            )
            logger.warning(
                "step failed: %s",
                reason,
                extra={"job": known.job_id, "step": step, "site": str(ctx.site)},
            )
            self._set(known, step, StepState.FAILED, reason=reason)
            return True
        state = status.state
        if state is StepState.WAITING:
            results = step_results(known.job, step)
            if results and all(result_stored(ctx, r) for r in results.values()):
                self._set(known, step, StepState.REUSED)
                return True
            if not self._producers_done(known, step):
                return False
            ctx.jobs.set_step_state(known.job_id, step, StepState.FETCHING, ctx.now())
            state = StepState.FETCHING
        needed = step_inputs(known.job, known.plan, step, submitter_site=known.submitter_site)
        fetched: list[str] = []
        work = ctx.work_dir / known.job_id / step
        shutil.rmtree(work, ignore_errors=True)
        try:
            digests: dict[WorkflowItem, str] = {}
            chains: list[ReceiptChain] = []
            live = self._live.live_inputs(needed)
            for item in needed:
                if item.item in live:
                    continue  # read live from its owner's site while the step runs
                producer_inputs = None
                if item.producer is not None:
                    producer_inputs = step_inputs(
                        known.job,
                        known.plan,
                        item.producer.step,
                        submitter_site=known.submitter_site,
                    )
                digest, was_fetched, chain = self._fetcher.archive(known, item, producer_inputs)
                digests[item.item] = digest
                if chain is not None:
                    chains.append(chain)
                if was_fetched:
                    fetched.append(digest)
            if state is StepState.FETCHING:
                ctx.jobs.set_step_state(known.job_id, step, StepState.RUNNING, ctx.now())
                state = StepState.RUNNING
            # The outputs live in room that cannot outgrow the limit, until packaged.
            with ctx.runtime.output_space(work / "outputs", ctx.limits.max_output_bytes):
                made = _Made(needed, digests, chains, decision.rule_ids())
                return self._run_and_package(known, step, state, made, live)
        finally:
            self._fetcher.release(fetched)
            shutil.rmtree(work, ignore_errors=True)
            with contextlib.suppress(OSError):  # other steps of the job may still work there
                work.parent.rmdir()

    def _run_and_package(
        self,
        known: KnownJob,
        step: str,
        state: StepState,
        made: _Made,
        live: set[WorkflowItem],
    ) -> bool:
        """Run the step's container and package its outputs; True once the step is done."""
        ctx = self._ctx
        result, bases = self._run(known, step, made.needed, made.digests, live)
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
        if state is StepState.RUNNING:
            ctx.jobs.set_step_state(
                known.job_id, step, StepState.STORING, ctx.now(), exit_code=result.exit_code
            )
        try:
            images = package_outputs(ctx, known, step, result.outputs, bases)
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
        results = step_results(known.job, step)
        ran_on = [
            ReceiptInput(receipt_item(n), str(n.asset), made.digests[n.item])
            for n in made.needed
            if n.item in made.digests
        ]
        chains = {}
        for output, image in images.items():
            chains[output] = self._receipts.make(
                known,
                step,
                output,
                results[output],
                image.digest,
                ran_on,
                made.rules,
                made.chains,
            )
        store_step_results(ctx, known, step, images, chains)
        logger.info(
            "step succeeded",
            extra={"job": known.job_id, "step": step, "seconds": result.duration_seconds},
        )
        return True

    def _producers_done(self, known: KnownJob, step: str) -> bool:
        """Whether every step this one reads from is done; _Blocked if one never will be."""
        ctx = self._ctx
        remote: dict[str, dict[str, StepStatus]] = {}
        for producer in sorted(known.job.workflow.predecessors(step)):
            site = known.plan.assignments[producer]
            if site == ctx.site:
                producer_status = ctx.jobs.step_status(known.job_id, producer)
            else:
                key = str(site)
                if key not in remote:
                    try:
                        statuses = ctx.peers.get(site).step_statuses(known.job_id)
                    except NotFound:
                        return False  # the steps are not handed over there yet
                    remote[key] = {s.step: s for s in statuses}
                found = remote[key].get(producer)
                if found is None:
                    return False  # not handed over there yet
                producer_status = found
            if producer_status.state.done:
                continue
            if producer_status.state.terminal:
                raise _Blocked(f"step {producer} {producer_status.state.value}")
            return False
        return True

    def _run(
        self,
        known: KnownJob,
        step: str,
        needed: list[StepInput],
        digests: dict[WorkflowItem, str],
        live: set[WorkflowItem],
    ) -> tuple[ContainerOutcome, dict[str, str]]:
        """Load the images, lay out the inputs and run the step's container."""
        ctx = self._ctx
        work = ctx.work_dir / known.job_id / step
        compute = self._load(digests[WorkflowItem(ItemKind.STEP, step)])
        inputs = {}
        bases = {}
        for item in needed:
            if item.item in live:
                continue
            if item.item.kind is ItemKind.STEP_INPUT:
                name = item.item.part
                inputs[name] = work / "inputs" / name
                image = self._load(digests[item.item])
                try:
                    ctx.runtime.extract_data(image, inputs[name])
                except Unavailable:
                    raise
                except MahiruError as error:
                    # The input may be an earlier step's output: what is wrong with it
                    # names that step's files, which stay in this site's log.
                    logger.warning(
                        "step input could not be laid out",
                        extra={"job": known.job_id, "step": step, "error": cut(error.message)},
                    )
                    raise InvalidInput(f"input {name} could not be laid out for the step") from None
            elif item.item.kind is ItemKind.OUTPUT_BASE:
                bases[item.item.part] = self._load(digests[item.item])
        outputs = sorted(known.job.workflow.steps[step].outputs)
        labels = step_labels(site=str(ctx.site), job=known.job_id, step=step)
        labels[LABEL_INSTANCE] = ctx.instance
        with self._live.open(known, step, [n for n in needed if n.item in live]) as channel:
            result = ctx.runtime.run_step(
                compute,
                inputs,
                outputs,
                ctx.limits,
                output_dir=work / "outputs",
                labels=labels,
                live=channel.sockets,
                environment=channel.environment,
            )
        return result, bases

    def _load(self, digest: str) -> str:
        """The engine's image id for a stored archive, loading it once."""
        return self._images.load(digest)
