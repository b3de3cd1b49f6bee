"""Workflow items: the things of a workflow that policies decide about.

Text forms: a workflow input `name`; a step `s` (its compute asset); a step
input `s.in`; an output base `s.@out`; a step output `s.out`; a workflow
output `name`. Names are unique across inputs, outputs and steps, so a bare
name is never ambiguous.

See docs/reference.md, "Assets, workflows, jobs and results".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from mahiru.errors import InvalidInput
from mahiru.model.workflow import Workflow


class ItemKind(Enum):
    """What a workflow item is."""

    WORKFLOW_INPUT = "workflow input"
    STEP = "step"
    STEP_INPUT = "step input"
    OUTPUT_BASE = "output base"
    STEP_OUTPUT = "step output"
    WORKFLOW_OUTPUT = "workflow output"


@dataclass(frozen=True, slots=True, order=True)
class WorkflowItem:
    """One item of a workflow; `part` is the input/output name for step items."""

    kind: ItemKind
    name: str
    part: str = ""

    def __str__(self) -> str:
        if self.kind is ItemKind.STEP_INPUT or self.kind is ItemKind.STEP_OUTPUT:
            return f"{self.name}.{self.part}"
        if self.kind is ItemKind.OUTPUT_BASE:
            return f"{self.name}.@{self.part}"
        return self.name

    @classmethod
    def parse(cls, text: object, workflow: Workflow) -> WorkflowItem:
        """Resolve an item text against `workflow`, raising InvalidInput if it names nothing."""
        if not isinstance(text, str) or not text:
            raise InvalidInput(f"invalid workflow item {text!r}")
        if "." in text:
            step_name, _, part = text.partition(".")
            step = workflow.steps.get(step_name)
            if step is None:
                raise InvalidInput(f"workflow item {text!r}: no step named {step_name!r}")
            if part.startswith("@"):
                if part[1:] in step.outputs:
                    return cls(ItemKind.OUTPUT_BASE, step_name, part[1:])
            elif part in step.inputs:
                return cls(ItemKind.STEP_INPUT, step_name, part)
            elif part in step.outputs:
                return cls(ItemKind.STEP_OUTPUT, step_name, part)
            raise InvalidInput(
                f"workflow item {text!r}: step {step_name!r} has no input or output {part!r}"
            )
        if text in workflow.steps:
            return cls(ItemKind.STEP, text)
        if text in workflow.inputs:
            return cls(ItemKind.WORKFLOW_INPUT, text)
        if text in workflow.outputs:
            return cls(ItemKind.WORKFLOW_OUTPUT, text)
        raise InvalidInput(f"workflow item {text!r} names no input, output or step")
