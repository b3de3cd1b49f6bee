"""Workflows, jobs and the items policies talk about.

A workflow is a DAG of steps. Construction validates it completely: unknown
sources, duplicate names and cycles are InvalidInput naming the culprits.

See docs/reference.md, "Assets, workflows, jobs and results".
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from mahiru.errors import InvalidInput
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId

_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: What `check_name` accepts, and what `parse_source` does, as JSON Schema patterns.
NAME_PATTERN = f"^{_NAME.pattern}$"
SOURCE_PATTERN = f"^{_NAME.pattern}([.]{_NAME.pattern})?$"


def check_name(name: object, what: str) -> str:
    """Validate a workflow, step, input or output name (no dots: they separate items)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid {what} name {name!r}: use letters, digits, '_' and '-'",
            {"name": name},
        )
    return name


@dataclass(frozen=True, slots=True)
class StepOutputRef:
    """A reference `step.output` to one output of a step."""

    step: str
    output: str

    def __str__(self) -> str:
        return f"{self.step}.{self.output}"


Source = str | StepOutputRef
"""Where a step input comes from: a workflow input name, or a step output."""


def parse_source(text: object, where: str) -> Source:
    """Parse `name` (a workflow input) or `step.output`."""
    if not isinstance(text, str):
        raise InvalidInput(f"{where}: source must be a string, got {text!r}")
    if "." in text:
        step, _, output = text.partition(".")
        return StepOutputRef(check_name(step, f"{where} source step"), check_name(output, where))
    return check_name(text, f"{where} source")


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    """One step: run `compute_asset` on `inputs`, producing `outputs`.

    `outputs` maps each output name to its output base asset, or None for the
    minimal data base.
    """

    name: str
    compute_asset: AssetId
    inputs: Mapping[str, Source]
    outputs: Mapping[str, AssetId | None]

    def __post_init__(self) -> None:
        check_name(self.name, "step")
        for name in self.inputs:
            check_name(name, f"step {self.name!r} input")
        for name in self.outputs:
            check_name(name, f"step {self.name!r} output")
        # `s.x` names a step input or a step output, so one name cannot be both.
        both = sorted(set(self.inputs) & set(self.outputs))
        if both:
            raise InvalidInput(
                f"step {self.name!r} uses {', '.join(both)} as both input and output name",
                {"step": self.name, "names": both},
            )
        object.__setattr__(self, "inputs", dict(sorted(self.inputs.items())))
        object.__setattr__(self, "outputs", dict(sorted(self.outputs.items())))

    def __hash__(self) -> int:
        return hash((self.name, self.compute_asset, tuple(self.inputs.items())))


@dataclass(frozen=True, slots=True)
class Workflow:
    """A validated DAG of steps with named inputs and outputs."""

    inputs: tuple[str, ...]
    outputs: Mapping[str, StepOutputRef]
    steps: Mapping[str, WorkflowStep]
    _order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __init__(
        self,
        inputs: tuple[str, ...] | list[str],
        outputs: Mapping[str, StepOutputRef],
        steps: list[WorkflowStep] | tuple[WorkflowStep, ...],
    ) -> None:
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "outputs", dict(outputs))
        seen: set[str] = set()
        duplicates: list[str] = []
        for name in [*self.inputs, *self.outputs, *(s.name for s in steps)]:
            check_name(name, "workflow")
            if name in seen:
                duplicates.append(name)
            seen.add(name)
        if duplicates:
            raise InvalidInput(
                "duplicate names in workflow (inputs, outputs and steps must all be"
                f" distinct): {', '.join(sorted(set(duplicates)))}",
                {"duplicates": sorted(set(duplicates))},
            )
        object.__setattr__(self, "steps", {s.name: s for s in steps})
        self._check_sources()
        object.__setattr__(self, "_order", self._topological_order())

    def _check_sources(self) -> None:
        unknown: list[str] = []
        for step in self.steps.values():
            for input_name, source in step.inputs.items():
                if not self._source_exists(source):
                    unknown.append(f"{step.name}.{input_name} <- {source}")
        for output_name, ref in self.outputs.items():
            # A workflow output must be a step output, never a workflow input passed through.
            if not isinstance(ref, StepOutputRef) or not self._source_exists(ref):
                unknown.append(f"output {output_name} <- {ref}")
        if unknown:
            raise InvalidInput(
                f"unknown sources in workflow: {'; '.join(unknown)}", {"unknown": unknown}
            )

    def _source_exists(self, source: Source) -> bool:
        if isinstance(source, StepOutputRef):
            step = self.steps.get(source.step)
            return step is not None and source.output in step.outputs
        return source in self.inputs

    def _topological_order(self) -> tuple[str, ...]:
        """Steps in an order where every step comes after its sources (Kahn, by name)."""
        consumers: dict[str, list[str]] = {name: [] for name in self.steps}
        missing: dict[str, int] = {}
        for step in self.steps.values():
            predecessors = self.predecessors(step.name)
            missing[step.name] = len(predecessors)
            for predecessor in predecessors:
                consumers[predecessor].append(step.name)
        # A heap, so the smallest ready name goes first whatever order the steps were listed in.
        ready = sorted(name for name, count in missing.items() if count == 0)
        order: list[str] = []
        while ready:
            name = heapq.heappop(ready)
            order.append(name)
            for consumer in consumers[name]:
                missing[consumer] -= 1
                if missing[consumer] == 0:
                    heapq.heappush(ready, consumer)
        if len(order) != len(self.steps):
            # Left over are the cycles and the steps downstream of them; name only the former.
            left = {name for name, count in missing.items() if count > 0}
            cyclic = sorted(name for name in left if self._reaches_itself(name, left))
            raise InvalidInput(
                f"workflow has a cycle through steps: {', '.join(cyclic)}", {"cycle": cyclic}
            )
        return tuple(order)

    def _reaches_itself(self, start: str, among: set[str]) -> bool:
        """Whether following predecessors within `among` leads from `start` back to it."""
        seen: set[str] = set()
        frontier = [start]
        while frontier:
            for predecessor in self.predecessors(frontier.pop()) & among:
                if predecessor == start:
                    return True
                if predecessor not in seen:
                    seen.add(predecessor)
                    frontier.append(predecessor)
        return False

    def predecessors(self, step_name: str) -> set[str]:
        """Names of the steps whose outputs `step_name` consumes."""
        return {
            source.step
            for source in self.steps[step_name].inputs.values()
            if isinstance(source, StepOutputRef)
        }

    def topological_order(self) -> tuple[str, ...]:
        """Step names, each after all of its predecessors."""
        return self._order

    def __hash__(self) -> int:
        # Sorted, because equality of the mappings does not depend on their order.
        return hash((self.inputs, tuple(sorted(self.outputs)), tuple(sorted(self.steps))))


@dataclass(frozen=True, slots=True)
class Job:
    """A workflow submitted by a party, with each workflow input bound to an asset."""

    submitter: PartyId
    workflow: Workflow
    inputs: Mapping[str, AssetId | ResultId]

    def __post_init__(self) -> None:
        declared = set(self.workflow.inputs)
        bound = set(self.inputs)
        if declared != bound:
            problems = []
            if declared - bound:
                problems.append(f"unbound inputs: {', '.join(sorted(declared - bound))}")
            if bound - declared:
                problems.append(f"unknown inputs: {', '.join(sorted(bound - declared))}")
            raise InvalidInput(f"job inputs do not match the workflow: {'; '.join(problems)}")
        object.__setattr__(self, "inputs", dict(sorted(self.inputs.items())))

    def __hash__(self) -> int:
        return hash((self.submitter, self.workflow, tuple(self.inputs.items())))

    def result_ids(self) -> dict[StepOutputRef, ResultId]:
        """The content-independent identity of every step output (see docs/reference.md)."""
        ids: dict[StepOutputRef, ResultId] = {}
        for step_name in self.workflow.topological_order():
            step = self.workflow.steps[step_name]
            inputs: dict[str, str] = {}
            for input_name, source in step.inputs.items():
                if isinstance(source, StepOutputRef):
                    inputs[input_name] = str(ids[source])
                else:
                    inputs[input_name] = str(self.inputs[source])
            for output in step.outputs:
                ref = StepOutputRef(step_name, output)
                canonical = canonical_json(
                    {
                        "compute": str(step.compute_asset),
                        "output": output,
                        "base": str(step.outputs[output]) if step.outputs[output] else None,
                        "inputs": inputs,
                    }
                )
                ids[ref] = ResultId(hashlib.sha256(canonical).hexdigest())
        return ids


@dataclass(frozen=True, slots=True)
class Plan:
    """For each step of a workflow, the site that runs it."""

    assignments: Mapping[str, SiteId]

    def __post_init__(self) -> None:
        object.__setattr__(self, "assignments", dict(sorted(self.assignments.items())))

    def __iter__(self) -> Iterator[str]:
        return iter(self.assignments)

    def __getitem__(self, step: str) -> SiteId:
        return self.assignments[step]

    def __hash__(self) -> int:
        return hash(tuple(self.assignments.items()))
