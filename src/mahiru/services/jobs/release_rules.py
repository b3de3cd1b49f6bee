"""What the egress gate decides by: whose permissions a stored asset or result carries,
and who may have it, as decisions that explain themselves.

Pure functions of the policy engine and a result's recorded provenance; the
gate (`egress.Egress`) takes the decisions, audits them and opens the images.
"""

from __future__ import annotations

from typing import Protocol

from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs import ResultProvenance
from mahiru.model.workflow import Job
from mahiru.policy.decisions import Decision
from mahiru.policy.permissions import JobPermissions, Permissions, primary
from mahiru.services.site.policy_view import Concerning


class Answers(Protocol):
    """What the decisions here ask: the policy engine that decides a release, or a
    `PolicyReader` answering the same questions for a page, unaudited."""

    def job_permissions(self, job: Job) -> JobPermissions:
        """The permissions of every item of `job`."""
        ...

    def may_access(self, site: SiteId, permissions: Permissions, target: str) -> Decision:
        """Whether `site` may access something with `permissions`."""
        ...

    def may_use(self, party: PartyId, permissions: Permissions, target: str) -> Decision:
        """Whether `party` may use something with `permissions`."""
        ...


class OneResultAnswers:
    """`answers`, working out the permissions of a job once for all the questions about it
    (the last job asked for is kept): for asking many sites and parties about one result."""

    __slots__ = ("_answers", "_job", "_permissions")

    def __init__(self, answers: Answers) -> None:
        self._answers = answers
        self._job: Job | None = None
        self._permissions: JobPermissions | None = None

    def job_permissions(self, job: Job) -> JobPermissions:
        """The permissions of every item of `job`, worked out once while it is the last."""
        if self._permissions is None or job is not self._job:
            self._job, self._permissions = job, self._answers.job_permissions(job)
        return self._permissions

    def may_access(self, site: SiteId, permissions: Permissions, target: str) -> Decision:
        """As `answers` says."""
        return self._answers.may_access(site, permissions, target)

    def may_use(self, party: PartyId, permissions: Permissions, target: str) -> Decision:
        """As `answers` says."""
        return self._answers.may_use(party, permissions, target)


def site_decision(
    engine: Answers,
    stored: AssetId | ResultId,
    provenance: ResultProvenance | None,
    site: SiteId,
) -> Decision:
    """Access for `site`; for a workflow output, also use by the job's submitter.

    A site that releases a result makes the whole decision itself, as the
    planner did: a result the submitter may not use never leaves for it,
    whatever plan the asker followed.
    """
    permissions, target = permissions_of(engine, stored, provenance)
    access = engine.may_access(site, permissions, target)
    if provenance is None or not any(
        (ref.step, ref.output) == (provenance.step, provenance.output)
        for ref in provenance.job.workflow.outputs.values()
    ):
        return access
    use = engine.may_use(provenance.job.submitter, permissions, target)
    return Decision.all_of(str(site), "receive", str(stored), (access, use))


def owners_use(party: PartyId, asset: AssetId) -> Decision:
    """A party uses an asset of its own namespace: its own data, needing no rule of its own.

    Taken, audited and recorded like any other release, so an owner's users
    fetching its assets back from its site leave the same trail as anyone.
    """
    return Decision(True, str(party), "use", str(asset), note="the asset is its own")


def party_decision(
    engine: Answers,
    stored: AssetId | ResultId,
    provenance: ResultProvenance | None,
    party: PartyId,
) -> Decision:
    """Use by `party`: of an asset of its own namespace, always (`owners_use`); of
    anything else, as its permissions (a result's: from how it was made) say."""
    if isinstance(stored, AssetId) and stored.namespace == party.namespace:
        return owners_use(party, stored)
    permissions, target = permissions_of(engine, stored, provenance)
    return engine.may_use(party, permissions, target)


def permissions_of(
    engine: Answers, stored: AssetId | ResultId, provenance: ResultProvenance | None
) -> tuple[Permissions, str]:
    """The permissions of a stored asset, or of a result from its provenance, and a name
    for it in explanations."""
    if provenance is None:
        return primary(stored), str(stored)
    item = WorkflowItem(ItemKind.STEP_OUTPUT, provenance.step, provenance.output)
    return engine.job_permissions(provenance.job)[item], f"{stored} ({item})"


def about_release(
    action: str, actor: str, stored: AssetId | ResultId, provenance: ResultProvenance | None
) -> Concerning:
    """A release of `stored`; for a result, part of the job that made it."""
    if provenance is None:
        return Concerning(action, actor, asset=str(stored))
    return Concerning(
        action,
        actor,
        party=str(provenance.job.submitter),
        job=provenance.job_id,
        step=provenance.step,
        asset=str(stored),
    )
