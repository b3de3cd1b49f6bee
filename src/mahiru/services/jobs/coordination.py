"""The submitter's site following its jobs: hand-over, remote step states, outputs, the end.

Each round, for every planned or running job submitted here: deliver any
assignment not delivered yet, mirror the states of steps run elsewhere,
and once every step is done, collect the workflow outputs from the sites
that made them into this site's store and mark the job succeeded. An output
that a reviewer has still to approve for the submitter (at the site that made
it, this one or another) keeps the job running, noted "awaiting review by ...",
and is asked for again after a growing pause (1 s doubling to 5 s, so a
pending review does not cost the producing site an audited decision every
round); a rejected one fails the job. A job
that failed or was cancelled has its remaining steps cancelled everywhere.
"""

from __future__ import annotations

import contextlib
import logging

from mahiru.errors import AwaitingReview, Conflict, MahiruError, NotFound, Unavailable
from mahiru.model.identifiers import JobId, ResultId, SiteId
from mahiru.model.jobs import (
    JobState,
    JobStatus,
    ResultProvenance,
    step_inputs,
    workflow_output_sources,
)
from mahiru.retry import Backoff
from mahiru.services.background import BackgroundLoop
from mahiru.services.jobs.dispatch import Dispatcher
from mahiru.services.jobs.ledger import JobLedger, KnownJob
from mahiru.services.jobs.peers import JobPeers
from mahiru.services.jobs.receipts import Receipts
from mahiru.services.jobs.release_reviews import ReleaseReviews
from mahiru.services.jobs.step_logs import LogRetention
from mahiru.services.jobs.step_watch import StepWatch
from mahiru.services.jobs.storing import ResultStore
from mahiru.services.jobs.submission import JobSubmissions

logger = logging.getLogger("mahiru.site.jobs")

#: How long a job whose output awaits a review waits before asking again.
REVIEW_POLL = Backoff(first=1.0, factor=2.0, cap=5.0)


class JobCoordinator:
    """Follows the jobs submitted here in a background thread.

    Rounds come every `interval` seconds, and at once when something
    changed: a step that runs here wakes the loop when it finishes (`wake`),
    and the states of steps at other sites come by long poll (`watch`, a
    `StepWatch`), which wakes it when a site answers. Only a step site the
    watch cannot hold a long poll for (too many at once) is asked every
    `running_interval` seconds instead.
    """

    def __init__(
        self,
        ledger: JobLedger,
        peers: JobPeers,
        results: ResultStore,
        receipts: Receipts,
        dispatcher: Dispatcher,
        submissions: JobSubmissions,
        reviews: ReleaseReviews,
        *,
        retention: LogRetention | None = None,
        interval: float = 0.5,
        running_interval: float = 0.1,
    ) -> None:
        self._ledger = ledger
        self._peers = peers
        self._results = results
        self._receipts = receipts
        self._dispatcher = dispatcher
        self._submissions = submissions
        self._reviews = reviews
        self._running_interval = running_interval
        self._retention = retention
        # job -> (times asked while awaiting review, monotonic time to ask again)
        self._awaiting: dict[str, tuple[int, float]] = {}
        self.loop = BackgroundLoop(
            "mahiru-jobs", self._round, interval, logger=logger, context={"site": str(ledger.site)}
        )
        self.watch = StepWatch(peers, self.wake, self.loop.stop_event)

    def start(self) -> None:
        """Start following jobs (also those left unfinished by an earlier run)."""
        self.watch.start()
        self.loop.start()

    def wake(self) -> None:
        """Run the next round now."""
        self.loop.wake()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current round."""
        self.loop.stop(timeout)
        self.watch.stop()

    def _round(self) -> float | None:
        """Follow each unfinished job once; sooner again while a site running steps of one
        is asked directly (not watched).

        Steps that run here need no polling: the worker wakes this loop when
        one finishes; nor do steps elsewhere that the watch follows.
        """
        if self._retention is not None:
            self._retention.prune_when_due()
        polled = False
        followed: list[tuple[JobId, SiteId]] = []
        for status in self._ledger.job_records.list_jobs(
            states=[JobState.PLANNED, JobState.RUNNING]
        ):
            if self.loop.stopping:
                break
            elsewhere = self._follow(status)
            followed += [(status.job_id, site) for site in elsewhere]
            polled = polled or (
                status.state is JobState.RUNNING
                and not all(self.watch.watching(status.job_id, site) for site in elsewhere)
            )
        if not self.loop.stopping:
            self.watch.keep(followed)
        return self._running_interval if polled else None

    def _follow(self, status: JobStatus) -> list[SiteId]:
        """Move the job on; the other sites where it still runs steps."""
        ledger, job_id = self._ledger, status.job_id
        self._dispatcher.deliver(status, attempts=1)
        elsewhere = sorted(
            {s.site for s in ledger.job_records.steps_of(job_id) if not s.state.terminal}
            - {ledger.site},
            key=str,
        )
        for site in elsewhere:
            try:
                reported = self.watch.report(job_id, site)
            except (Unavailable, NotFound) as error:
                logger.debug("no step states yet: %s", error.message, extra={"job": job_id})
                if isinstance(error, Unavailable) and self._dispatcher.delivered(job_id, site):
                    self._unreachable(status, site, error)
                continue
            for step_status in reported or ():
                ledger.waits.report(step_status)
                try:
                    ledger.job_records.mirror_step_status(step_status, ledger.now())
                except MahiruError as error:
                    logger.warning(
                        "bad step state report: %s", error.message, extra={"job": job_id}
                    )
        status = ledger.job_records.get_job(job_id)
        if status.state in (JobState.FAILED, JobState.CANCELLED):
            self._wind_down(status)
        elif all(s.state.done for s in ledger.job_records.steps_of(job_id)):
            asked = self._awaiting.get(job_id)
            if asked is None or ledger.clock.monotonic() >= asked[1]:
                self._finish(status)
        return elsewhere

    def _unreachable(self, status: JobStatus, site: SiteId, error: Unavailable) -> None:
        """Note on the steps `site` runs (handed over already) that it cannot be asked."""
        reason = f"cannot ask {site} how its steps are: {error.message}"
        for step in self._ledger.job_records.steps_of(status.job_id):
            if step.site == site and not step.state.terminal:
                self._ledger.note_wait(status.job_id, step.step, reason, site)

    def _wind_down(self, status: JobStatus) -> None:
        """A job that failed: cancel what still runs of it, here and elsewhere."""
        ledger = self._ledger
        self._awaiting.pop(status.job_id, None)
        ledger.job_records.cancel_steps(status.job_id, f"job {status.state.value}", ledger.now())
        ledger.waits.forget(status.job_id)
        self._submissions.tell_participants(status)

    def _finish(self, status: JobStatus) -> None:
        """Collect the workflow outputs here, then mark the job succeeded."""
        ledger = self._ledger
        assert status.plan is not None  # planned or running jobs have their plan
        known = KnownJob(status.job_id, status.job, status.plan, status.submitter_site)
        remote = False  # whether what is awaited is asked of another site
        try:
            for source in workflow_output_sources(status.job, status.plan):
                result, producer = source.asset, source.producer
                if not isinstance(result, ResultId) or producer is None:
                    continue  # workflow outputs are always step results
                provenance = ResultProvenance(
                    result, status.job_id, producer.step, producer.output, status.job
                )
                again = False  # a copy here that a review rule added since must clear first
                if self._results.stored(result):
                    if source.site == ledger.site:  # made here: its submitter's by review only
                        self._reviews.delivery_hold(result, provenance)
                        continue
                    if self._reviews.approved_copy(
                        provenance, self._results.verified_chain(result)
                    ):
                        continue
                    again = True
                expected = step_inputs(
                    status.job, status.plan, producer.step, submitter_site=status.submitter_site
                )
                remote = True
                info, chain = self._receipts.fetch(
                    known, self._peers.get(source.site), result, source.site, expected
                )
                self._results.store_collected(known, provenance, info, chain, replace=again)
        except Unavailable as error:
            logger.info(
                "cannot collect outputs yet: %s", error.message, extra={"job": status.job_id}
            )
            return
        except AwaitingReview as waiting:
            # Not a failure: the job runs on, saying whom it waits for. A review here is
            # looked at again next round; another site is asked again after a pause.
            self._note(status, waiting)
            if remote:
                asked = self._awaiting.get(status.job_id, (0, 0.0))[0] + 1
                pause = REVIEW_POLL.delay(asked)
                self._awaiting[status.job_id] = (asked, ledger.clock.monotonic() + pause)
            return
        except MahiruError as error:
            self._awaiting.pop(status.job_id, None)
            reason = f"cannot collect the workflow outputs: {error.message}"
            with contextlib.suppress(Conflict):  # it finished meanwhile
                ledger.job_records.set_job_state(
                    status.job_id, JobState.FAILED, reason, ledger.now()
                )
            return
        self._awaiting.pop(status.job_id, None)
        ledger.job_records.set_job_state(status.job_id, JobState.SUCCEEDED, None, ledger.now())
        logger.info("job succeeded", extra={"job": status.job_id})

    def _note(self, status: JobStatus, waiting: AwaitingReview) -> None:
        """Note on the running job the review its output waits for."""
        details = waiting.details if isinstance(waiting.details, dict) else {}
        note = f"awaiting review by {details.get('reviewer')} (review {details.get('review')})"
        logger.info("job awaits review: %s", waiting.message, extra={"job": status.job_id})
        with contextlib.suppress(Conflict):  # it ended meanwhile (cancelled)
            self._ledger.job_records.note_job(status.job_id, note, self._ledger.now())
