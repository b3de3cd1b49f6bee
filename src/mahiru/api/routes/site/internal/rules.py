"""A site's rules, under `/internal/rules`: added and revoked by admins (signed by the
namespace owner), listed with the peers' and the rejected ones by any user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import WithJsonSchema

from mahiru.api.routes.site.dependencies import Admin, Services, User
from mahiru.api.site_models import (
    RejectedRuleList,
    RejectedRuleOut,
    RuleEntry,
    RuleList,
    RuleOutcomeOut,
)
from mahiru.policy.signing import REVOCATION_SHAPE, SIGNED_RULE_SCHEMA, Revocation, SignedRule
from mahiru.services.site import RuleOutcome
from mahiru.storage import REGISTRY_SOURCE

#: A signed rule, parsed by `SignedRule.from_dict`.
SignedRuleBody = Annotated[dict[str, Any], Body(), WithJsonSchema(SIGNED_RULE_SCHEMA)]
#: A signed revocation, parsed by `Revocation.from_dict`.
RevocationBody = Annotated[dict[str, Any], Body(), WithJsonSchema(REVOCATION_SHAPE.json_schema())]

router = APIRouter(prefix="/internal", tags=["internal"])


def _outcome(outcome: RuleOutcome) -> RuleOutcomeOut:
    return RuleOutcomeOut(rule_id=outcome.rule_id, changed=outcome.changed, version=outcome.version)


@router.post("/rules", response_model=RuleOutcomeOut, summary="Add a signed rule")
def add_rule(body: SignedRuleBody, caller: Admin, services: Services) -> RuleOutcomeOut:
    """Store a rule signed by the owner of its namespace; peers then replicate it."""
    return _outcome(services.rules.add(SignedRule.from_dict(body), user=caller.person))


@router.get("/rules", response_model=RuleList, summary="List rules")
def list_rules(caller: User, services: Services, include_replicated: bool = False) -> RuleList:
    """This site's active rules, oldest first; with `include_replicated`, peers' too."""
    site = str(services.site)
    entries = [
        RuleEntry(rule_id=signed.rule_id, source=site, rule=signed.to_dict())
        for signed in services.rules.active()
    ]
    if include_replicated:
        for source in services.replication.replica.sources():
            if source == REGISTRY_SOURCE:
                continue
            entries.extend(
                RuleEntry(rule_id=signed.rule_id, source=source, rule=signed.to_dict())
                for signed in services.rules.replicated(source)
            )
    return RuleList(rules=entries)


@router.post("/rules/revocations", response_model=RuleOutcomeOut, summary="Revoke a rule")
def revoke_rule(body: RevocationBody, caller: Admin, services: Services) -> RuleOutcomeOut:
    """Revoke a rule stored here, with a revocation signed by its namespace owner."""
    return _outcome(services.rules.revoke(Revocation.from_dict(body), user=caller.person))


@router.get("/rules/rejected", response_model=RejectedRuleList, summary="List rejected peer rules")
def rejected_rules(caller: User, services: Services) -> RejectedRuleList:
    """Rules and revocations from peers that failed validation, with the reasons."""
    return RejectedRuleList(
        rejected=[RejectedRuleOut.of(r) for r in services.replication.replica.rejected_rules()]
    )
