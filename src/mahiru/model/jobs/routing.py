"""Where each step input comes from: a primary asset's site, or the site of the step making it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from mahiru.errors import InvalidInput
from mahiru.model.identifiers import AssetId, ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs.checks import check_step_of
from mahiru.model.workflow import Job, Plan, StepOutputRef

# --- where step inputs come from ----------------------------------------------------------


class InputOrigin(Enum):
    """A step input is a primary asset, or a result of an earlier step of the same job."""

    PRIMARY = "primary"
    RESULT = "result"


@dataclass(frozen=True, slots=True)
class StepInput:
    """One thing a step needs, and the site to fetch it from.

    `item` is what it feeds: the step itself (its compute asset), a step input
    `s.i`, an output base `s.@o`, or (for `workflow_output_sources`) a workflow
    output. A primary asset is a job input, compute asset or output base,
    stored at `site` (job inputs bound to a result of an earlier job are at the
    submitter's site). A result is output `producer` of a step of this job, at
    the site the plan runs that step on.
    """

    item: WorkflowItem
    origin: InputOrigin
    asset: AssetId | ResultId
    site: SiteId
    producer: StepOutputRef | None = None


def _primary(item: WorkflowItem, asset: AssetId | ResultId, submitter_site: SiteId) -> StepInput:
    site = asset.site if isinstance(asset, AssetId) else submitter_site
    return StepInput(item, InputOrigin.PRIMARY, asset, site)


def _result(
    item: WorkflowItem, ref: StepOutputRef, plan: Plan, results: Mapping[StepOutputRef, ResultId]
) -> StepInput:
    site = plan.assignments.get(ref.step)
    if site is None:
        raise InvalidInput(f"the plan assigns no site to step {ref.step!r}", {"step": ref.step})
    return StepInput(item, InputOrigin.RESULT, results[ref], site, ref)


def step_inputs(
    job: Job,
    plan: Plan,
    step: str,
    *,
    submitter_site: SiteId,
    results: Mapping[StepOutputRef, ResultId] | None = None,
) -> list[StepInput]:
    """Everything `step` needs at its site: compute asset, inputs by name, then output bases.

    `results` may pass `job.result_ids()` in, to compute it once for many steps.
    """
    check_step_of(job, step)
    definition = job.workflow.steps[step]
    results = job.result_ids() if results is None else results
    needed = [_primary(WorkflowItem(ItemKind.STEP, step), definition.compute_asset, submitter_site)]
    for name, source in definition.inputs.items():
        item = WorkflowItem(ItemKind.STEP_INPUT, step, name)
        if isinstance(source, StepOutputRef):
            needed.append(_result(item, source, plan, results))
        else:
            needed.append(_primary(item, job.inputs[source], submitter_site))
    for output, base in definition.outputs.items():
        if base is not None:
            item = WorkflowItem(ItemKind.OUTPUT_BASE, step, output)
            needed.append(_primary(item, base, submitter_site))
    return needed


def workflow_output_sources(job: Job, plan: Plan) -> list[StepInput]:
    """Where the submitter's site collects each workflow output from, by output name."""
    results = job.result_ids()
    return [
        _result(WorkflowItem(ItemKind.WORKFLOW_OUTPUT, name), ref, plan, results)
        for name, ref in sorted(job.workflow.outputs.items())
    ]
