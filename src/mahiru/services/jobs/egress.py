"""The egress gate: the one place that decides whether a stored asset or result leaves.

Every image that goes out of this site - to a peer over the external API, to
a user over the internal API, as a job's output - is opened through here:
the site's own policy engine decides (access for a site, use for a party),
and only an allowing decision makes the `Release` that `AssetStore.open_image`
requires. A step's log tail is output of the step too: it goes to a party
only where that party may use every output of the step, and otherwise stays
here (in the site's own log), the status saying why it was withheld. A
result's permissions are recomputed from its recorded provenance (the job
that made it), never taken from the asker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from mahiru.errors import NotFound, PermissionDenied
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs import ResultProvenance, StepStatus
from mahiru.model.workflow import Job
from mahiru.policy.decisions import Decision, Release
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.permissions import Permissions, primary
from mahiru.services.jobs.live_grants import is_live
from mahiru.services.site.assets import AssetStore, ImageFile
from mahiru.services.site.policy_view import PolicyView
from mahiru.storage import ProvenanceRepository

logger = logging.getLogger("mahiru.site.egress")


class Egress:
    """Decides, then opens: stored images for the sites and parties policy lets have them."""

    def __init__(
        self, policy: PolicyView, assets: AssetStore, provenance: ProvenanceRepository
    ) -> None:
        self._policy = policy
        self._assets = assets
        self._provenance = provenance

    def _decide_for_site(
        self, engine: PolicyEngine, stored: AssetId | ResultId, site: SiteId
    ) -> Decision:
        """Access for `site`; for a workflow output, also use by the job's submitter.

        A site that releases a result makes the whole decision itself, as the
        planner did: a result the submitter may not use never leaves for it,
        whatever plan the asker followed.
        """
        permissions, target, provenance = self._permissions(engine, stored)
        access = engine.may_access(site, permissions, target)
        if provenance is None or not any(
            (ref.step, ref.output) == (provenance.step, provenance.output)
            for ref in provenance.job.workflow.outputs.values()
        ):
            return access
        use = engine.may_use(provenance.job.submitter, permissions, target)
        return Decision.all_of(str(site), "receive", str(stored), (access, use))

    def _permissions(
        self, engine: PolicyEngine, stored: AssetId | ResultId
    ) -> tuple[Permissions, str, ResultProvenance | None]:
        """The permissions of a stored asset or result (from its provenance), a name for
        it in explanations, and the provenance (None for an asset)."""
        if isinstance(stored, AssetId):
            return primary(stored), str(stored), None
        provenance = self._provenance.get_provenance(stored)  # NotFound if none is recorded
        item = WorkflowItem(ItemKind.STEP_OUTPUT, provenance.step, provenance.output)
        permissions = engine.job_permissions(provenance.job)[item]
        return permissions, f"{stored} ({item})", provenance

    def release_to_site(self, stored: AssetId | ResultId, site: SiteId) -> Release:
        """Leave for `stored` to go to `site`; PermissionDenied with the reasons.

        For a result, a site that may not have it is told "not found", exactly
        as for a result that does not exist: results are named by how they are
        computed, so anyone can name one, and the answer must not say whether
        it was computed here. The reasons go to this site's log.
        """
        if isinstance(stored, AssetId):
            return Release(
                self._policy.decide(lambda engine: self._decide_for_site(engine, stored, site))
            )
        unavailable = NotFound(f"{stored} is not available to {site} here", {"result": str(stored)})
        try:
            decision = self._policy.decide(
                lambda engine: self._decide_for_site(engine, stored, site)
            )
        except NotFound:
            raise unavailable from None
        if not decision.allowed:
            logger.info(
                "result refused",
                extra={"result": str(stored), "site": str(site), "why": decision.failures()},
            )
            raise unavailable
        return Release(decision)

    def release_to_party(self, stored: AssetId | ResultId, party: PartyId) -> Release:
        """Leave for `stored` to go to a user of `party` (use); PermissionDenied, with why."""

        def evaluate(engine: PolicyEngine) -> Decision:
            permissions, target, _ = self._permissions(engine, stored)
            return engine.may_use(party, permissions, target)

        return Release(self._policy.decide(evaluate))

    def to_site(self, stored: AssetId | ResultId, site: SiteId) -> ImageFile:
        """The image of `stored`, for `site`, if this site's policy lets it have it.

        A data set its owner marked for live access only never leaves whole:
        its bytes go only through the live channel, to a running step.
        """
        release = self.release_to_site(stored, site)
        if isinstance(stored, AssetId) and is_live(self._assets.get(stored).asset.metadata):
            raise PermissionDenied(
                f"{stored} is served only live, to a step that reads it while it runs;"
                " its image never leaves the site that holds it",
                {"asset": str(stored)},
            )
        return self._assets.open_image(stored, release)

    def to_party(self, stored: AssetId | ResultId, party: PartyId) -> ImageFile:
        """The image of `stored`, for a user of `party`, if policy lets the party use it."""
        return self._assets.open_image(stored, self.release_to_party(stored, party))

    def step_views(
        self, job: Job, statuses: Iterable[StepStatus], party: PartyId
    ) -> list[StepStatus]:
        """`statuses` as `party` may see them: each log tail only if it may use the step's outputs.

        A withheld log is replaced by the reason, so the reader knows it exists.
        """
        statuses = list(statuses)
        if not any(status.log_tail for status in statuses):
            return statuses
        engine = self._policy.engine
        permissions = engine.job_permissions(job)
        views = []
        for status in statuses:
            if status.log_tail:
                decision = Decision.all_of(
                    str(party),
                    "see the log of",
                    status.step,
                    tuple(
                        engine.may_use(party, permissions[item], str(item))
                        for item in _outputs(job, status.step)
                    ),
                )
                if not decision.allowed:
                    withheld = "; ".join(decision.failures())
                    status = replace(status, log_tail=f"(log withheld: {withheld})")
            views.append(status)
        return views


def _outputs(job: Job, step: str) -> list[WorkflowItem]:
    return [
        WorkflowItem(ItemKind.STEP_OUTPUT, step, output)
        for output in sorted(job.workflow.steps[step].outputs)
    ]
