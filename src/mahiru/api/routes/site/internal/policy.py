"""Policy questions at a site, under `/internal/policy`: a decision and why, asked by any user."""

from __future__ import annotations

from fastapi import APIRouter

from mahiru.api.routes.site.dependencies import Services, User
from mahiru.api.site_models import DecisionOut, ExplainRequest
from mahiru.errors import InvalidInput
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.serialization import job_from_dict

router = APIRouter(prefix="/internal", tags=["internal"])


@router.post(
    "/policy/explain",
    response_model=DecisionOut,
    response_model_exclude_none=True,
    summary="Explain a policy decision",
)
def explain(body: ExplainRequest, caller: User, services: Services) -> DecisionOut:
    """Whether `site` may access (or `party` may use) one item of a job, and why."""
    if (body.site is None) == (body.party is None):
        raise InvalidInput("give exactly one of site or party")
    job = job_from_dict(body.job.model_dump())
    item = WorkflowItem.parse(body.item, job.workflow)
    decision = services.policy.explain(
        job,
        item,
        site=SiteId.parse(body.site) if body.site is not None else None,
        party=PartyId.parse(body.party) if body.party is not None else None,
    )
    return DecisionOut.model_validate(decision.to_dict())
