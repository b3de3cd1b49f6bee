"""Who may have a stored result: decided here, from how it was made (never the asker's word)."""

from __future__ import annotations

from mahiru.errors import PermissionDenied
from mahiru.model.identifiers import ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.services.jobs.context import JobContext


def authorise_result(ctx: JobContext, result: ResultId, site: SiteId) -> None:
    """PermissionDenied unless this site's policy lets `site` access `result`.

    The result's permissions are recomputed from its recorded provenance (the
    job that made it); NotFound if none is recorded.
    """
    provenance = ctx.jobs.get_provenance(result)
    engine = ctx.policy.engine
    item = WorkflowItem(ItemKind.STEP_OUTPUT, provenance.step, provenance.output)
    permissions = engine.job_permissions(provenance.job)[item]
    decision = engine.may_access(site, permissions, f"{result} ({item})")
    if not decision.allowed:
        raise PermissionDenied("; ".join(decision.failures()), decision.to_dict())
