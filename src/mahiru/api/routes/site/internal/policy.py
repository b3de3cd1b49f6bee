"""Policy questions at a site, under `/internal/policy`: a decision and why, asked by any user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import WithJsonSchema

from mahiru.api.routes.site.dependencies import Services, User
from mahiru.api.site_models import DecisionOut
from mahiru.model.questions import POLICY_QUESTION_SHAPE, PolicyQuestion

#: A question to explain, parsed by `PolicyQuestion.from_dict`.
Question = Annotated[dict[str, Any], Body(), WithJsonSchema(POLICY_QUESTION_SHAPE.json_schema())]

router = APIRouter(prefix="/internal", tags=["internal"])


@router.post(
    "/policy/explain",
    response_model=DecisionOut,
    response_model_exclude_none=True,
    summary="Explain a policy decision",
)
def explain(body: Question, caller: User, services: Services) -> DecisionOut:
    """Whether `site` may access (or `party` may use) one item of a job, and why."""
    question = PolicyQuestion.from_dict(body)
    decision = services.policy.explain(
        question.job, question.item, site=question.site, party=question.party
    )
    return DecisionOut.model_validate(decision.to_dict())
