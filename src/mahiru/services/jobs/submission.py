"""Jobs as the users of this site's owner party see them: submit, list, show, cancel, outputs.

A job is planned here with this site's policy over the registry replica's
sites; a denial is the planner's PermissionDenied, with its explanation.
A job records the person who submitted it. A plain user sees, cancels and
fetches the outputs of only the jobs they submitted; an admin those of every
user of the party (`Person.sees_job`). Any other job is NotFound, alike
whether it exists or not.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from mahiru.clock import IdSource, random_id
from mahiru.errors import InvalidInput, MahiruError, NotFound, NotKnown, PermissionDenied
from mahiru.model.assets import Asset, submitter_site
from mahiru.model.identifiers import AssetId, JobId, PartyId, ResultId, SiteId
from mahiru.model.jobs import JobState, JobStatus
from mahiru.model.people import Person
from mahiru.model.prov import job_provenance
from mahiru.model.workflow import Job, Plan
from mahiru.planner import NoPermittedPlan
from mahiru.services.jobs.egress import Egress, StepView
from mahiru.services.jobs.ledger import JobLedger
from mahiru.services.jobs.peers import JobPeers, retrying
from mahiru.services.site.policy_view import Concerning, PolicyView
from mahiru.storage import AssetRepository, Database, ReplicaRepository
from mahiru.storage.tes_tasks import TaskFieldRepository, TaskFields

logger = logging.getLogger("mahiru.site.jobs")


class JobSubmissions:
    """The jobs of this site's users."""

    def __init__(
        self,
        ledger: JobLedger,
        policy: PolicyView,
        sites: ReplicaRepository,
        peers: JobPeers,
        asset_records: AssetRepository,
        database: Database,
        egress: Egress,
        *,
        on_change: Callable[[], None],
        stop_job: Callable[[JobId], int],
        task_fields: TaskFieldRepository,
        new_id: IdSource = random_id,
    ) -> None:
        self._ledger = ledger
        self._policy = policy
        self._sites = sites
        self._peers = peers
        self._asset_records = asset_records
        self._database = database
        self._new_id = new_id
        self._egress = egress
        self._on_change = on_change
        self._stop_job = stop_job
        self._task_fields = task_fields

    def submit(self, job: Job, person: Person, *, task: TaskFields | None = None) -> JobStatus:
        """Plan and store a job `person` submits for their party, to hand over;
        PermissionDenied if none is permitted. A job submitted as a TES task keeps the
        task's own fields (`task`) with it."""
        ledger = self._ledger
        party, user = person.party, str(person)
        plan = self._plan(job, person)
        job_id = JobId(self._new_id())
        placed = ", ".join(f"{step} at {site}" for step, site in sorted(plan.assignments.items()))
        with self._database.transaction():  # the decision and the job it made, or neither
            about = Concerning("plan job", str(party), str(party), job=job_id, user=user)
            self._policy.planned(about, True, f"planned: {placed}")
            status = ledger.job_records.create_job(
                job_id, job, plan, ledger.site, ledger.now(), submitted_by=user
            )
            if task is not None:
                self._task_fields.add(job_id, task)
        logger.info(
            "job planned",
            extra={"job": job_id, "plan": {s: str(site) for s, site in plan.assignments.items()}},
        )
        # The coordinator hands the steps over in its next round, which this
        # starts now: a slow or unreachable participant never holds up the
        # submitter's answer (it is retried there, as after a restart).
        self._on_change()
        return status

    def check(self, job: Job, person: Person) -> Plan:
        """The plan `job` would get if `person` submitted it now, without storing or
        running anything; NoPermittedPlan (with its explanation) if none is permitted.

        Neither a plan nor a refusal is audited: nothing was submitted."""
        return self._plan(job, person, audited=False)

    def _plan(self, job: Job, person: Person, *, audited: bool = True) -> Plan:
        """Check who submits `job` where, and plan it; a refusal is audited if `audited`."""
        ledger = self._ledger
        party, user = person.party, str(person)
        if job.submitter != party:
            raise PermissionDenied(
                f"users of {party} may submit jobs only as {party}, not as {job.submitter}",
                {"submitter": str(job.submitter), "party": str(party)},
            )
        sites = [record.describe() for record in self._sites.sites()]
        home = submitter_site(sites, job.submitter).id
        if home != ledger.site:
            raise InvalidInput(
                f"jobs of {job.submitter} are submitted at {home}, not at {ledger.site}",
                {"submitter_site": str(home)},
            )
        try:
            # Planned again after a refresh if no plan is permitted: the replica
            # may lag a replication round behind rules just added elsewhere.
            plan = self._policy.plan(
                job, lambda: [record.describe() for record in self._sites.sites()], self._sizes(job)
            )
        except NoPermittedPlan as denial:
            if audited:
                about = Concerning("plan job", str(party), str(party), user=user)
                self._policy.planned(about, False, denial.denial.explain())
            # A step no site may run because of a mistyped asset id reads better
            # as what it is than as a denial.
            if denial.denial.steps:
                self._check_assets_known(job)
            raise
        return plan

    def _check_assets_known(self, job: Job) -> None:
        """NotFound naming each primary asset of `job` that no site is known to store.

        Asked only after planning failed: an asset whose site is not registered,
        one said to be stored here that is not, and one its site does not show
        to this site (which cannot tell "unknown" from "hidden" there).
        """
        ledger = self._ledger
        unknown: dict[str, str] = {}
        registered = {record.id for record in self._sites.sites()}
        stored = (asset for asset in _primary_assets(job) if isinstance(asset, AssetId))
        for asset in sorted(stored, key=str):
            site = asset.site
            if site not in registered:
                unknown[str(asset)] = f"no site {site} is registered"
            elif site == ledger.site:
                if not self._asset_records.has(asset):
                    unknown[str(asset)] = f"{site} (this site) does not store it"
            else:
                try:
                    self._peers.get(site).get_asset(asset)
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
        sizes: dict[AssetId | ResultId, int] = {}
        for asset in _primary_assets(job):
            try:
                size = self._asset_records.get(asset).size
            except NotFound:
                continue
            if size is not None:
                sizes[asset] = size
        return sizes

    def describe_asset(self, asset: AssetId) -> Asset:
        """The description of `asset`, from this site or from the site that stores it."""
        if asset.site == self._ledger.site:
            return self._asset_records.get(asset).asset
        return self._peers.get(asset.site).get_asset(asset).asset

    def stored_size(self, result: ResultId) -> int | None:
        """The size of a result stored here, if known."""
        try:
            return self._asset_records.get(result).size
        except NotFound:
            return None

    def task_fields(self, job_ids: Iterable[JobId]) -> dict[JobId, TaskFields]:
        """The TES task fields of those of `job_ids` that were submitted as tasks."""
        return self._task_fields.of(job_ids)

    def visible_to(self, person: Person) -> list[JobStatus]:
        """The jobs submitted here that `person` sees (`Person.sees_job`), oldest first."""
        return self._ledger.job_records.list_jobs(
            submitter=person.party, submitted_by=person.jobs_submitted_by()
        )

    def get(self, job_id: JobId, person: Person) -> tuple[JobStatus, list[StepView]]:
        """A job `person` sees, and its steps; NotKnown for unknown jobs and every job they
        do not see (another party's, or for a plain user, another user's).

        A step's output (reason, exit code, log tail) is shown only where the job's
        party may use the step's outputs (the egress gate's step views).
        """
        try:
            status = self._ledger.job_records.get_job(job_id)
        except NotFound:
            status = None
        if status is None or not person.sees_job(status.submitter, status.submitted_by):
            raise NotKnown("job", job_id)
        steps = self._ledger.waits.shown(self._ledger.job_records.steps_of(job_id))
        return status, self._egress.step_views(status.job, steps, status.submitter)

    def provenance(self, job_id: JobId, person: Person) -> dict[str, Any]:
        """How a job `person` sees made its results, as a W3C PROV-JSON document."""
        status, steps = self.get(job_id, person)
        return job_provenance(status, [view.status for view in steps], self.site_owners(status))

    def site_owners(self, status: JobStatus) -> dict[SiteId, PartyId]:
        """The owner of each site a job's plan names and of the site it was submitted at
        (a site since removed from the registry has none)."""
        owners = {}
        planned = status.plan.assignments.values() if status.plan is not None else ()
        for site in {*planned, status.submitter_site}:
            with contextlib.suppress(NotFound):
                owners[site] = self._sites.site(site).owner
        return owners

    def cancel(self, job_id: JobId, person: Person) -> JobStatus:
        """Cancel a job `person` sees here, stop its containers, and tell the other sites.

        The audit records of the cancelled job and steps name `person`.
        """
        ledger = self._ledger
        self.get(job_id, person)  # NotFound for jobs they do not see
        who = str(person)
        cancelled = ledger.job_records.cancel_job(
            job_id, f"cancelled by user:{who}", ledger.now(), user=who
        )
        ledger.waits.forget(job_id)
        self._stop_job(job_id)
        self.tell_participants(cancelled)
        logger.info("job cancelled", extra={"job": job_id, "by": who})
        return cancelled

    def tell_participants(self, status: JobStatus) -> None:
        """Ask the other sites of a finished job to cancel what they still run of it."""
        ledger = self._ledger
        if status.plan is None:
            return
        for site in sorted(set(status.plan.assignments.values()) - {ledger.site}, key=str):
            try:
                peer = self._peers.get(site)
                retrying(
                    partial(peer.cancel, status.job_id),
                    f"cancel {status.job_id} at {site}",
                    clock=self._ledger.clock,
                )
            except MahiruError as error:
                logger.warning(
                    "cannot cancel steps at a peer: %s",
                    error.message,
                    extra={"job": status.job_id, "site": str(site)},
                )

    def output(self, job_id: JobId, name: str, person: Person) -> ResultId:
        """The result id of a workflow output of a succeeded job `person` sees."""
        status, _ = self.get(job_id, person)
        outputs = status.outputs()
        if name not in outputs:
            raise NotFound(f"job {job_id} has no output {name!r}", {"outputs": sorted(outputs)})
        if status.state is not JobState.SUCCEEDED:
            raise NotFound(
                f"job {job_id} is {status.state.value}: its outputs are there once it succeeded",
                {"state": status.state.value},
            )
        return outputs[name]


def _primary_assets(job: Job) -> set[AssetId | ResultId]:
    """The assets a job names: its inputs, compute assets and output bases."""
    named: set[AssetId | ResultId] = set(job.inputs.values())
    for step in job.workflow.steps.values():
        named.add(step.compute_asset)
        named.update(base for base in step.outputs.values() if base is not None)
    return named
