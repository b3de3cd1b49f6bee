"""Permissions of workflow items: lists of requirements, kept normalised.

A requirement is a set of asset or collection ids; a subject meets it if it is
granted any one of them (directly or via a containing collection). Permissions
are the conjunction of their requirements. Normalisation drops duplicates and
supersets, so permissions stay small however deep the workflow is.

See docs/reference.md, "Policy semantics".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mahiru.model.identifiers import WILDCARD, AssetId, Identifier
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.workflow import Job, StepOutputRef
from mahiru.policy.rules import (
    InAssetCategory,
    InAssetCollection,
    ResultOfComputeIn,
    ResultOfDataIn,
)
from mahiru.policy.store import RuleStore


@dataclass(frozen=True, slots=True)
class Requirement:
    """A set of ids of which a subject must be granted at least one.

    `origin` says where the requirement came from, for explanations; it takes
    no part in equality.
    """

    ids: frozenset[Identifier]
    origin: str = field(default="", compare=False)

    def sort_key(self) -> tuple[int, list[str]]:
        """A deterministic order: smaller first, then by text."""
        return (len(self.ids), sorted(str(i) for i in self.ids))

    def texts(self) -> list[str]:
        """The ids as sorted text."""
        return sorted(str(i) for i in self.ids)


@dataclass(frozen=True, slots=True)
class Permissions:
    """A normalised conjunction of requirements."""

    requirements: tuple[Requirement, ...]

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self.requirements)

    def __len__(self) -> int:
        return len(self.requirements)


def normalise(requirements: Iterable[Requirement]) -> Permissions:
    """Drop duplicate requirements and any that is a superset of another."""
    kept: list[Requirement] = []
    # dict.fromkeys keeps the first of equal requirements (and so its origin);
    # the sort is stable, so the result does not depend on hashing.
    for requirement in sorted(dict.fromkeys(requirements), key=Requirement.sort_key):
        if not any(other.ids <= requirement.ids for other in kept):
            kept.append(requirement)
    return Permissions(tuple(kept))


def primary(asset: Identifier) -> Permissions:
    """Permissions of a primary asset: the single requirement {asset}."""
    return Permissions((Requirement(frozenset({asset}), f"asset {asset}"),))


NOBODY_BLOCKS = Permissions(())


class JobPermissions:
    """The permissions of every item of one job, computed once, in topological order."""

    def __init__(self, job: Job, store: RuleStore) -> None:
        self.job = job
        self._store = store
        self._items: dict[WorkflowItem, Permissions] = {}
        self._compute()

    def __getitem__(self, item: WorkflowItem) -> Permissions:
        return self._items[item]

    def items(self) -> Mapping[WorkflowItem, Permissions]:
        """Every item with its permissions (read-only: engines share one per job)."""
        return MappingProxyType(self._items)

    def _source(self, source: str | StepOutputRef) -> Permissions:
        if isinstance(source, StepOutputRef):
            return self._items[WorkflowItem(ItemKind.STEP_OUTPUT, source.step, source.output)]
        return self._items[WorkflowItem(ItemKind.WORKFLOW_INPUT, source)]

    def _compute(self) -> None:
        workflow = self.job.workflow
        for name in workflow.inputs:
            self._items[WorkflowItem(ItemKind.WORKFLOW_INPUT, name)] = primary(
                self.job.inputs[name]
            )
        for name in workflow.topological_order():
            step = workflow.steps[name]
            self._items[WorkflowItem(ItemKind.STEP, name)] = primary(step.compute_asset)
            input_permissions = []
            for input_name, source in step.inputs.items():
                permissions = self._source(source)
                input_permissions.append(permissions)
                self._items[WorkflowItem(ItemKind.STEP_INPUT, name, input_name)] = permissions
            for output, base in step.outputs.items():
                base_permissions = primary(base) if base is not None else NOBODY_BLOCKS
                self._items[WorkflowItem(ItemKind.OUTPUT_BASE, name, output)] = base_permissions
                self._items[WorkflowItem(ItemKind.STEP_OUTPUT, name, output)] = self._output(
                    name, step.compute_asset, output, [*input_permissions, base_permissions]
                )
        for name, ref in workflow.outputs.items():
            self._items[WorkflowItem(ItemKind.WORKFLOW_OUTPUT, name)] = self._source(ref)

    def _output(
        self, step: str, compute: AssetId, output: str, sources: list[Permissions]
    ) -> Permissions:
        """Permissions of `step.output`: a data side and a compute side per source requirement."""
        store = self._store
        compute_groups = store.up(InAssetCollection, compute)
        compute_categories = store.up(InAssetCategory, compute)
        requirements: list[Requirement] = []
        unique = dict.fromkeys(r for permissions in sources for r in permissions)
        for requirement in sorted(unique, key=Requirement.sort_key):
            data_groups: set[Identifier] = set()
            data_categories: set[Identifier] = set()
            for x in requirement.ids:
                data_groups.update(store.up(InAssetCollection, x))
                data_categories.update(store.up(InAssetCategory, x))
            data_side = {
                rule.collection
                for d in data_groups
                for rule in store.indexed(ResultOfDataIn, d)
                if rule.output in (output, "*")
                and (rule.compute is WILDCARD or rule.compute in compute_categories)
            }
            compute_side = {
                rule.collection
                for c in compute_groups
                for rule in store.indexed(ResultOfComputeIn, c)
                if rule.output in (output, "*")
                and (rule.data is WILDCARD or rule.data in data_categories)
            }
            about = f"{step}.{output} from {{{', '.join(requirement.texts())}}}"
            requirements.append(
                Requirement(frozenset(data_side), f"ResultOfDataIn for {about} and {compute}")
            )
            requirements.append(
                Requirement(frozenset(compute_side), f"ResultOfComputeIn for {about} by {compute}")
            )
        return normalise(requirements)
