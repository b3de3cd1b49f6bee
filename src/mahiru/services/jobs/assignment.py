"""This site's side of the hand-over: steps other sites (or itself) give it to run.

Only the submitter's site named in an assignment may hand it over or cancel
it, and that site must belong to the job's submitter. Step statuses are told
to the sites taking part in the job only; every other site is answered as
for a job that does not exist (`NotKnown`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mahiru.errors import InvalidInput, NotFound, NotKnown, PermissionDenied
from mahiru.model import serialization
from mahiru.model.identifiers import JobId, SiteId
from mahiru.model.jobs import StepAssignment
from mahiru.model.live import LiveReader, live_readers, steps_reading
from mahiru.services.jobs.egress import Egress, StepView
from mahiru.services.jobs.ledger import JobLedger, KnownJob
from mahiru.services.site.policy_view import Concerning, PolicyView
from mahiru.storage import ReplicaRepository

logger = logging.getLogger("mahiru.site.jobs")


class StepAssignments:
    """Receives steps to run, reports their statuses and cancels them, for other sites."""

    def __init__(
        self,
        ledger: JobLedger,
        policy: PolicyView,
        sites: ReplicaRepository,
        egress: Egress,
        on_steps: Callable[[], None],
        stop_job: Callable[[JobId], int],
    ) -> None:
        self._ledger = ledger
        self._policy = policy
        self._sites = sites
        self._egress = egress
        self._on_steps = on_steps
        self._stop_job = stop_job

    def receive(self, assignment: StepAssignment, caller: SiteId) -> list[StepView]:
        """Record the steps handed to this site by `caller`; their statuses here."""
        ledger = self._ledger
        if caller != assignment.submitter_site:
            raise PermissionDenied(
                f"{caller} may not hand over steps of job {assignment.job_id}: only the"
                f" submitter's site {assignment.submitter_site} may",
                {"caller": str(caller), "submitter_site": str(assignment.submitter_site)},
            )
        if assignment.site != ledger.site:
            raise InvalidInput(
                f"the steps are meant for {assignment.site}, but this is {ledger.site}",
                {"site": str(assignment.site)},
            )
        owner = self._sites.site(assignment.submitter_site).owner
        if owner != assignment.job.submitter:
            raise PermissionDenied(
                f"{assignment.submitter_site} belongs to {owner}, not to the job's submitter"
                f" {assignment.job.submitter}",
                {"submitter": str(assignment.job.submitter), "owner": str(owner)},
            )
        # The whole decision, made here as the planner made it: every step at its
        # planned site, and the outputs usable by the submitter and deliverable to
        # its site. A plan this site's policy would not produce is refused.
        decision = self._policy.decide(
            lambda engine: engine.check_job(
                engine.job_permissions(assignment.job),
                assignment.plan.assignments,
                assignment.submitter_site,
            ),
            Concerning(
                "receive steps",
                str(caller),
                party=str(assignment.job.submitter),
                job=assignment.job_id,
                step=", ".join(assignment.steps),
            ),
        )
        if not decision.allowed:
            raise PermissionDenied(
                f"{ledger.site} refuses the steps of job {assignment.job_id}: its policy does not"
                " permit the job as planned: " + "; ".join(decision.failures()),
                decision.to_dict(),
            )
        statuses = ledger.job_records.upsert_step_assignment(assignment, ledger.now())
        logger.info(
            "steps received",
            extra={"job": assignment.job_id, "steps": assignment.steps, "from": str(caller)},
        )
        self._on_steps()
        ledger.changes.changed(assignment.job_id)
        return self._egress.step_views(assignment.job, statuses, assignment.job.submitter)

    def statuses(self, job_id: JobId, caller: SiteId) -> list[StepView]:
        """The statuses of the steps of a job this site runs, for a site taking part in it.

        A step's output (reason, exit code, log tail) goes only to the submitter's
        site, and only for steps whose outputs the submitter may use; other
        participants need the states only. Any other site hears what it hears
        for a job that does not exist.
        """
        ledger = self._ledger
        known = self._known_to(job_id, caller)
        own = ledger.waits.shown(
            s for s in ledger.job_records.steps_of(job_id) if s.site == ledger.site
        )
        if caller != known.submitter_site:
            return self._egress.step_states(own)
        return self._egress.step_views(known.job, own, known.job.submitter)

    async def statuses_after(
        self, job_id: JobId, caller: SiteId, *, version: str | None, seconds: float
    ) -> tuple[list[StepView], str]:
        """`statuses` and their version, once that differs from `version` (a long poll: at
        most `seconds`, see `step_changes`); refusals as `statuses` gives them."""
        return await self._ledger.changes.after(
            job_id,
            caller,
            lambda: self.statuses(job_id, caller),
            version=version,
            seconds=seconds,
        )

    def readers(self, job_id: JobId, caller: SiteId, job_digest: str) -> list[LiveReader]:
        """The unfinished steps of a job submitted here that read data stored at `caller`.

        What a data set's site asks before it grants a step live access: which
        of the job's steps reading its data still run, and where. Only the
        submitter's site answers (it plans and mirrors every step), only about
        the job whose digest the asker names (the one it was sent), and only to
        a site storing an input of one of the job's steps; everyone else hears
        what it hears for a job that does not exist. Nothing else about the
        job is told: no other steps, no inputs, no reasons or logs, and for a
        finished job no readers at all.
        """
        ledger = self._ledger
        try:
            status = ledger.job_records.get_job(job_id)
        except NotFound:
            raise NotKnown("job", job_id) from None
        if (
            status.submitter_site != ledger.site
            or job_digest != serialization.job_digest(status.job)  # public: no secret to time
            or not steps_reading(status.job, caller)
        ):
            raise NotKnown("job", job_id)
        return live_readers(status, ledger.job_records.steps_of(job_id), caller)

    def cancel(self, job_id: JobId, caller: SiteId) -> list[StepView]:
        """Cancel this site's unfinished steps of a job, at its submitter's site's request.

        Any other site hears what it hears for a job that does not exist.
        """
        ledger = self._ledger
        known = self._known_to(job_id, caller)
        if caller != known.submitter_site:
            raise NotKnown("job", job_id)
        cancelled = ledger.job_records.cancel_steps(job_id, f"cancelled by {caller}", ledger.now())
        ledger.waits.forget(job_id)
        self._stop_job(job_id)
        ledger.changes.changed(job_id)
        logger.info("steps cancelled", extra={"job": job_id, "by": str(caller)})
        return self._egress.step_states(s for s in cancelled if s.site == ledger.site)

    def _known_to(self, job_id: JobId, caller: SiteId) -> KnownJob:
        """The job, if `caller` takes part in it; NotKnown otherwise, as for no such job."""
        try:
            known = self._ledger.known_job(job_id)
        except NotFound:
            raise NotKnown("job", job_id) from None
        if caller not in known.sites:
            raise NotKnown("job", job_id)
        return known
