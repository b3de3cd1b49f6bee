"""Which review rules cover a workflow item's result, and who may review under one.

A `ReleaseReviewedBy` rule covers a result when its `asset` is, or is a
collection holding (through InAssetCollection, transitively), an id of the
result's lineage: the job inputs it derives from through the steps, and
every id its permissions require (the collections ResultOfDataIn and
ResultOfComputeIn rules put results in). Pure; the engine answers with these
(`PolicyEngine.reviews_of`, `PolicyEngine.may_review`).
"""

from __future__ import annotations

from mahiru.model.identifiers import Identifier, PartyId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.workflow import Job, StepOutputRef
from mahiru.policy.decisions import Decision, RequirementOutcome
from mahiru.policy.permissions import Permissions, Requirement
from mahiru.policy.rules import InAssetCollection, InPartyCategory, ReleaseReviewedBy
from mahiru.policy.store import RuleStore


def input_names(job: Job, item: WorkflowItem) -> tuple[str, ...]:
    """The workflow inputs `item` derives from, transitively through the steps, in the
    workflow's order (a step and each of its outputs derive from all its inputs; an
    output base from none)."""
    workflow = job.workflow
    steps: list[str] = []
    names: set[str] = set()
    if item.kind is ItemKind.WORKFLOW_INPUT:
        names.add(item.name)
    elif item.kind is ItemKind.STEP_INPUT:
        source = workflow.steps[item.name].inputs[item.part]
        if isinstance(source, StepOutputRef):
            steps.append(source.step)
        else:
            names.add(source)
    elif item.kind is ItemKind.WORKFLOW_OUTPUT:
        steps.append(workflow.outputs[item.name].step)
    elif item.kind is not ItemKind.OUTPUT_BASE:
        steps.append(item.name)
    seen: set[str] = set()
    while steps:
        step = steps.pop()
        if step in seen:
            continue
        seen.add(step)
        for source in workflow.steps[step].inputs.values():
            if isinstance(source, StepOutputRef):
                steps.append(source.step)
            else:
                names.add(source)
    return tuple(name for name in workflow.inputs if name in names)


def covering_reviews(
    store: RuleStore, job: Job, item: WorkflowItem, permissions: Permissions
) -> tuple[ReleaseReviewedBy, ...]:
    """The review rules in `store` covering `item` (whose permissions are `permissions`),
    each once, ordered by the asset they name and then by rule id."""
    lineage: set[Identifier] = {job.inputs[name] for name in input_names(job, item)}
    lineage.update(i for requirement in permissions for i in requirement.ids)
    reached: set[Identifier] = set()
    for x in lineage:
        reached.update(store.up(InAssetCollection, x))
    found = {rule for key in reached for rule in store.indexed(ReleaseReviewedBy, key)}
    return tuple(sorted(found, key=lambda rule: (str(rule.asset), rule.rule_id())))


def reviewer_decision(store: RuleStore, party: PartyId, rule: ReleaseReviewedBy) -> Decision:
    """May `party` review the results `rule` covers: it is the rule's reviewer or in the
    reviewer category (InPartyCategory, transitively), and the rule is in force."""
    target = f"results of {rule.asset}"
    if rule not in store:
        note = f"{rule} is not in force here"
        return Decision(False, str(party), "review", target, note=note)
    path = store.up(InPartyCategory, party).get(rule.reviewer)
    if path is None:
        note = f"the reviewer is {rule.reviewer}, and {party} is neither it nor in it"
        return Decision(False, str(party), "review", target, note=note)
    requirement = Requirement(frozenset({rule.reviewer}), f"reviewer of {rule}")
    outcome = RequirementOutcome(requirement, (rule, *path), ReleaseReviewedBy.type_name)
    return Decision(True, str(party), "review", target, (outcome,))
