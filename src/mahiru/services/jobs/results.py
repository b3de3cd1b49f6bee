"""Who may have a stored result: decided here, from how it was made (never the asker's word)."""

from __future__ import annotations

from mahiru.errors import PermissionDenied
from mahiru.model.identifiers import ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.services.jobs.context import JobContext


def authorise_result(ctx: JobContext, result: ResultId, site: SiteId) -> None:
    """PermissionDenied unless this site's policy lets `site` access `result`.

    The result's permissions are recomputed from its recorded provenance (the
    job that made it); NotFound if none is recorded.
    """
    provenance = ctx.jobs.get_provenance(result)
    item = WorkflowItem(ItemKind.STEP_OUTPUT, provenance.step, provenance.output)

    def evaluate(engine: PolicyEngine) -> Decision:
        permissions = engine.job_permissions(provenance.job)[item]
        return engine.may_access(site, permissions, f"{result} ({item})")

    decision = ctx.policy.decide(evaluate)
    if not decision.allowed:
        raise PermissionDenied("; ".join(decision.failures()), decision.to_dict())
