"""Jobs as the users of this site's owner party see them: submit, list, show, cancel, outputs.

A job is planned here with this site's policy over the registry replica's
sites; a denial is the planner's PermissionDenied, with its explanation.
Users see and cancel only their own party's jobs; others' are NotFound.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from mahiru.clock import IdSource, random_id
from mahiru.errors import InvalidInput, MahiruError, NotFound, PermissionDenied
from mahiru.model.assets import submitter_site
from mahiru.model.identifiers import AssetId, JobId, PartyId, ResultId
from mahiru.model.jobs import JobState, JobStatus
from mahiru.model.prov import job_provenance
from mahiru.model.workflow import Job
from mahiru.planner import NoPermittedPlan, plan_job
from mahiru.services.jobs.context import JobContext
from mahiru.services.jobs.egress import Egress, StepView
from mahiru.services.jobs.peers import retrying
from mahiru.services.site.policy_view import Concerning

logger = logging.getLogger("mahiru.site.jobs")


class JobSubmissions:
    """The jobs of this site's users."""

    def __init__(
        self,
        ctx: JobContext,
        egress: Egress,
        *,
        on_change: Callable[[], None],
        stop_job: Callable[[JobId], int],
        new_id: IdSource = random_id,
    ) -> None:
        self._ctx = ctx
        self._new_id = new_id
        self._egress = egress
        self._on_change = on_change
        self._stop_job = stop_job

    def submit(self, job: Job, party: PartyId) -> JobStatus:
        """Plan and store a job of `party` to hand over; PermissionDenied if none is permitted."""
        ctx = self._ctx
        if job.submitter != party:
            raise PermissionDenied(
                f"users of {party} may submit jobs only as {party}, not as {job.submitter}",
                {"submitter": str(job.submitter), "party": str(party)},
            )
        sites = [record.describe() for record in ctx.replica.sites()]
        home = submitter_site(sites, job.submitter).id
        if home != ctx.site:
            raise InvalidInput(
                f"jobs of {job.submitter} are submitted at {home}, not at {ctx.site}",
                {"submitter_site": str(home)},
            )
        try:
            try:
                plan = plan_job(job, sites, ctx.policy.engine, self._sizes(job))
            except PermissionDenied:
                # The replica may lag a replication round behind rules just added
                # elsewhere: bring it up to date once and plan again.
                if not ctx.policy.refresh():
                    raise
                sites = [record.describe() for record in ctx.replica.sites()]
                plan = plan_job(job, sites, ctx.policy.engine, self._sizes(job))
        except NoPermittedPlan as denial:
            about = Concerning("plan job", str(party), str(party))
            ctx.policy.planned(about, False, denial.denial.explain())
            # A step no site may run because of a mistyped asset id reads better
            # as what it is than as a denial.
            if denial.denial.steps:
                self._check_assets_known(job)
            raise
        job_id = JobId(self._new_id())
        placed = ", ".join(f"{step} at {site}" for step, site in sorted(plan.assignments.items()))
        with ctx.database.transaction():  # the decision and the job it made, or neither
            about = Concerning("plan job", str(party), str(party), job=job_id)
            ctx.policy.planned(about, True, f"planned: {placed}")
            status = ctx.jobs.create_job(job_id, job, plan, ctx.site, ctx.now())
        logger.info(
            "job planned",
            extra={"job": job_id, "plan": {s: str(site) for s, site in plan.assignments.items()}},
        )
        # The coordinator hands the steps over in its next round, which this
        # starts now: a slow or unreachable participant never holds up the
        # submitter's answer (it is retried there, as after a restart).
        self._on_change()
        return status

    def _check_assets_known(self, job: Job) -> None:
        """NotFound naming each primary asset of `job` that no site is known to store.

        Asked only after planning failed: an asset whose site is not registered,
        one said to be stored here that is not, and one its site does not show
        to this site (which cannot tell "unknown" from "hidden" there).
        """
        ctx = self._ctx
        unknown: dict[str, str] = {}
        registered = {record.id for record in ctx.replica.sites()}
        for asset in sorted(_primary_assets(job), key=str):
            site = asset.site
            if site not in registered:
                unknown[str(asset)] = f"no site {site} is registered"
            elif site == ctx.site:
                if not ctx.records.has(asset):
                    unknown[str(asset)] = f"{site} (this site) does not store it"
            else:
                try:
                    ctx.peers.get(site).get_asset(asset)
                except NotFound:
                    unknown[str(asset)] = f"{site} does not store it or does not show it here"
                except MahiruError:
                    continue  # unreachable or refusing: the denial stands as it is
        if unknown:
            raise NotFound(
                "the job names assets that are not known: "
                + "; ".join(f"{asset}: {why}" for asset, why in unknown.items()),
                {"unknown_assets": unknown},
            )

    def _sizes(self, job: Job) -> dict[AssetId | ResultId, int]:
        """Sizes of the job's primary assets stored here (the rest count as unknown)."""
        wanted: set[AssetId | ResultId] = set(job.inputs.values())
        for step in job.workflow.steps.values():
            wanted.add(step.compute_asset)
            wanted.update(base for base in step.outputs.values() if base is not None)
        sizes: dict[AssetId | ResultId, int] = {}
        for asset in wanted:
            try:
                size = self._ctx.records.get(asset).size
            except NotFound:
                continue
            if size is not None:
                sizes[asset] = size
        return sizes

    def of_party(self, party: PartyId) -> list[JobStatus]:
        """The jobs `party` submitted here, oldest first."""
        return self._ctx.jobs.list_jobs(submitter=party)

    def get(self, job_id: JobId, party: PartyId) -> tuple[JobStatus, list[StepView]]:
        """A job of `party` and its steps; NotFound for unknown jobs and other parties' jobs.

        A step's output (reason, exit code, log tail) is shown only where `party`
        may use the step's outputs (the egress gate's step views).
        """
        status = self._ctx.jobs.get_job(job_id)
        if status.submitter != party:
            raise NotFound(f"job {job_id} is not known here", {"job_id": job_id})
        steps = self._ctx.jobs.steps_of(job_id)
        return status, self._egress.step_views(status.job, steps, status.submitter)

    def provenance(self, job_id: JobId, party: PartyId) -> dict[str, Any]:
        """How a job of `party` made its results, as a W3C PROV-JSON document."""
        status, steps = self.get(job_id, party)
        owners = {}
        for site in set(status.plan.assignments.values()) if status.plan is not None else ():
            with contextlib.suppress(NotFound):  # a site since removed from the registry
                owners[site] = self._ctx.replica.site(site).owner
        return job_provenance(status, [view.status for view in steps], owners)

    def cancel(self, job_id: JobId, party: PartyId, who: str) -> JobStatus:
        """Cancel a job of `party` here, stop its containers, and tell the other sites."""
        ctx = self._ctx
        self.get(job_id, party)  # NotFound for other parties' jobs
        cancelled = ctx.jobs.cancel_job(job_id, f"cancelled by {who}", ctx.now())
        self._stop_job(job_id)
        self.tell_participants(cancelled)
        logger.info("job cancelled", extra={"job": job_id, "by": who})
        return cancelled

    def tell_participants(self, status: JobStatus) -> None:
        """Ask the other sites of a finished job to cancel what they still run of it."""
        ctx = self._ctx
        if status.plan is None:
            return
        for site in sorted(set(status.plan.assignments.values()) - {ctx.site}, key=str):
            try:
                peer = ctx.peers.get(site)
                retrying(partial(peer.cancel, status.job_id), f"cancel {status.job_id} at {site}")
            except MahiruError as error:
                logger.warning(
                    "cannot cancel steps at a peer: %s",
                    error.message,
                    extra={"job": status.job_id, "site": str(site)},
                )

    def output(self, job_id: JobId, name: str, party: PartyId) -> ResultId:
        """The result id of a workflow output of a succeeded job of `party`."""
        status, _ = self.get(job_id, party)
        outputs = status.outputs()
        if name not in outputs:
            raise NotFound(f"job {job_id} has no output {name!r}", {"outputs": sorted(outputs)})
        if status.state is not JobState.SUCCEEDED:
            raise NotFound(
                f"job {job_id} is {status.state.value}: its outputs are there once it succeeded",
                {"state": status.state.value},
            )
        return outputs[name]


def _primary_assets(job: Job) -> set[AssetId]:
    """The stored assets a job names: its inputs, compute assets and output bases."""
    named: set[AssetId | ResultId] = set(job.inputs.values())
    for step in job.workflow.steps.values():
        named.add(step.compute_asset)
        named.update(base for base in step.outputs.values() if base is not None)
    return {asset for asset in named if isinstance(asset, AssetId)}
