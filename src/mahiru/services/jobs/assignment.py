"""This site's side of the hand-over: steps other sites (or itself) give it to run.

Only the submitter's site named in an assignment may hand it over or cancel
it, and that site must belong to the job's submitter. Step statuses are told
to the sites taking part in the job only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mahiru.errors import InvalidInput, NotFound, PermissionDenied
from mahiru.model.identifiers import AssetId, JobId, SiteId
from mahiru.model.jobs import StepAssignment
from mahiru.model.workflow import Job
from mahiru.services.jobs.context import JobContext
from mahiru.services.jobs.egress import Egress, StepView
from mahiru.services.site.policy_view import Concerning

logger = logging.getLogger("mahiru.site.jobs")


class StepAssignments:
    """Receives steps to run, reports their statuses and cancels them, for other sites."""

    def __init__(
        self,
        ctx: JobContext,
        egress: Egress,
        on_steps: Callable[[], None],
        stop_job: Callable[[JobId], int],
    ) -> None:
        self._ctx = ctx
        self._egress = egress
        self._on_steps = on_steps
        self._stop_job = stop_job

    def receive(self, assignment: StepAssignment, caller: SiteId) -> list[StepView]:
        """Record the steps handed to this site by `caller`; their statuses here."""
        ctx = self._ctx
        if caller != assignment.submitter_site:
            raise PermissionDenied(
                f"{caller} may not hand over steps of job {assignment.job_id}: only the"
                f" submitter's site {assignment.submitter_site} may",
                {"caller": str(caller), "submitter_site": str(assignment.submitter_site)},
            )
        if assignment.site != ctx.site:
            raise InvalidInput(
                f"the steps are meant for {assignment.site}, but this is {ctx.site}",
                {"site": str(assignment.site)},
            )
        owner = ctx.replica.site(assignment.submitter_site).owner
        if owner != assignment.job.submitter:
            raise PermissionDenied(
                f"{assignment.submitter_site} belongs to {owner}, not to the job's submitter"
                f" {assignment.job.submitter}",
                {"submitter": str(assignment.job.submitter), "owner": str(owner)},
            )
        # The whole decision, made here as the planner made it: every step at its
        # planned site, and the outputs usable by the submitter and deliverable to
        # its site. A plan this site's policy would not produce is refused.
        decision = ctx.policy.decide(
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
                f"{ctx.site} refuses the steps of job {assignment.job_id}: its policy does not"
                " permit the job as planned: " + "; ".join(decision.failures()),
                decision.to_dict(),
            )
        statuses = ctx.jobs.upsert_step_assignment(assignment, ctx.now())
        logger.info(
            "steps received",
            extra={"job": assignment.job_id, "steps": assignment.steps, "from": str(caller)},
        )
        self._on_steps()
        return self._egress.step_views(assignment.job, statuses, assignment.job.submitter)

    def statuses(self, job_id: JobId, caller: SiteId) -> list[StepView]:
        """The statuses of the steps of a job this site runs, for a site taking part in it.

        A step's output (reason, exit code, log tail) goes only to the submitter's
        site, and only for steps whose outputs the submitter may use; other
        participants need the states only.
        """
        ctx = self._ctx
        known = ctx.known_job(job_id)
        if caller not in known.sites:
            raise NotFound(f"job {job_id} is not known here", {"job_id": job_id})
        own = [s for s in ctx.jobs.steps_of(job_id) if s.site == ctx.site]
        if caller != known.submitter_site:
            return self._egress.step_states(own)
        return self._egress.step_views(known.job, own, known.job.submitter)

    def readers(self, job_id: JobId, caller: SiteId) -> tuple[Job, list[StepView]]:
        """A job submitted here, and the states of its steps that read data stored at `caller`.

        What a data set's site asks before it grants a step live access: whether
        the job exists, which site runs the step and whether it has finished.
        Only the submitter's site answers (it plans and mirrors every step), and
        only to a site storing an input of one of the job's steps; everyone else
        hears "not known" as for a job that does not exist. States only: no
        reasons, no logs.
        """
        ctx = self._ctx
        unknown = NotFound(f"job {job_id} is not known here", {"job_id": job_id})
        try:
            known = ctx.known_job(job_id)
        except NotFound:
            raise unknown from None
        if known.submitter_site != ctx.site:
            raise unknown
        job = known.job
        reading = {
            name
            for name, step in job.workflow.steps.items()
            for source in step.inputs.values()
            if isinstance(source, str)
            and isinstance(asset := job.inputs.get(source), AssetId)
            and asset.site == caller
        }
        if not reading:
            raise unknown
        steps = self._egress.step_states(s for s in ctx.jobs.steps_of(job_id) if s.step in reading)
        return job, steps

    def cancel(self, job_id: JobId, caller: SiteId) -> list[StepView]:
        """Cancel this site's unfinished steps of a job, at its submitter's site's request."""
        ctx = self._ctx
        known = ctx.known_job(job_id)
        if caller not in known.sites:
            raise NotFound(f"job {job_id} is not known here", {"job_id": job_id})
        if caller != known.submitter_site:
            raise PermissionDenied(
                f"only the submitter's site {known.submitter_site} may cancel job {job_id}",
                {"caller": str(caller)},
            )
        cancelled = ctx.jobs.cancel_steps(job_id, f"cancelled by {caller}", ctx.now())
        self._stop_job(job_id)
        logger.info("steps cancelled", extra={"job": job_id, "by": str(caller)})
        return self._egress.step_states(s for s in cancelled if s.site == ctx.site)
