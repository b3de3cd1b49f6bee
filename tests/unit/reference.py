"""A reference evaluator of the policy semantics (docs/reference.md), checked line by line.

It scans the plain rule list for every question: no indices and no
normalisation. Its liberties, so deep test workflows stay tractable: it drops
*duplicate* requirements (a conjunction of A with A is A; supersets are kept,
unlike in the engine), and it remembers each `up`/`down` set of a rule list
once computed (`_Closures`: the same definition, evaluated once per rule list),
and likewise each job's permissions under a rule list.
Property tests compare the engine and the planner with this module, so
clarity beats speed here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from mahiru.model.identifiers import Identifier, PartyId, SiteId, Wildcard
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.workflow import Job, Source, StepOutputRef
from mahiru.policy.rules import (
    InAssetCategory,
    InAssetCollection,
    InPartyCategory,
    InSiteCategory,
    MayAccess,
    MayUse,
    ResultOfComputeIn,
    ResultOfDataIn,
    Rule,
)

Requirement = frozenset[Identifier]
#: A conjunction of requirements; each requirement is met by meeting any one id in it.
Permissions = list[Requirement]

# The (member, group) fields of each grouping rule type: "member is in group".
_GROUPING_FIELDS: dict[type, tuple[str, str]] = {
    InAssetCollection: ("asset", "collection"),
    InAssetCategory: ("asset", "category"),
    InSiteCategory: ("site", "category"),
    InPartyCategory: ("party", "category"),
}


def _edges(rules: Sequence[Rule], kind: type) -> list[tuple[Identifier, Identifier]]:
    """The (member, group) pairs of every grouping rule of `kind`."""
    member, group = _GROUPING_FIELDS[kind]
    return [(getattr(r, member), getattr(r, group)) for r in rules if isinstance(r, kind)]


def _closure(start: Identifier, edges: list[tuple[Identifier, Identifier]]) -> set[Identifier]:
    """`start` plus everything reachable along (from, to) edges; a fixpoint, so cycles end."""
    reached = {start}
    while new := {to for frm, to in edges if frm in reached} - reached:
        reached |= new
    return reached


def up(rules: Sequence[Rule], kind: type, x: Identifier) -> set[Identifier]:
    """x plus every group it is in, transitively, by grouping rules of `kind`."""
    return _closure(x, _edges(rules, kind))


def down(rules: Sequence[Rule], c: Identifier) -> set[Identifier]:
    """c plus everything grouped into c by InAssetCategory, transitively."""
    return _closure(c, [(group, member) for member, group in _edges(rules, InAssetCategory)])


class _Closures:
    """`up` and `down` of one rule list, each evaluated once (they depend on nothing else)."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self._up: dict[tuple[type, Identifier], frozenset[Identifier]] = {}
        self._down: dict[Identifier, frozenset[Identifier]] = {}
        # By id of the job, which each entry keeps alive (so the id is not reused).
        self.permissions: dict[int, tuple[Job, dict[WorkflowItem, Permissions]]] = {}

    def up(self, kind: type, x: Identifier) -> frozenset[Identifier]:
        if (kind, x) not in self._up:
            self._up[kind, x] = frozenset(up(self.rules, kind, x))
        return self._up[kind, x]

    def down(self, c: Identifier) -> frozenset[Identifier]:
        if c not in self._down:
            self._down[c] = frozenset(down(self.rules, c))
        return self._down[c]


@functools.lru_cache(maxsize=16)
def _closures_of(rules: tuple[Rule, ...]) -> _Closures:
    return _Closures(rules)


def _closures(rules: Sequence[Rule]) -> _Closures:
    return _closures_of(tuple(rules))


# -- permissions of workflow items ---------------------------------------------------------


def _data_side(g: _Closures, req: Requirement, k: Identifier, o: str) -> Requirement:
    """Every collection of ResultOfDataIn(d, c, out, coll), d in up(R), out in {o, *},
    c = * or k in down(c)."""
    up_req = set().union(*(g.up(InAssetCollection, x) for x in req))
    return frozenset(
        r.collection
        for r in g.rules
        if isinstance(r, ResultOfDataIn)
        and r.data in up_req
        and r.output in (o, "*")
        and (isinstance(r.compute, Wildcard) or k in g.down(r.compute))
    )


def _compute_side(g: _Closures, req: Requirement, k: Identifier, o: str) -> Requirement:
    """Every collection of ResultOfComputeIn(d, c, out, coll), c in up(k), out in {o, *},
    d = * or R meets down(d)."""
    return frozenset(
        r.collection
        for r in g.rules
        if isinstance(r, ResultOfComputeIn)
        and r.compute in g.up(InAssetCollection, k)
        and r.output in (o, "*")
        and (isinstance(r.data, Wildcard) or not req.isdisjoint(g.down(r.data)))
    )


def job_permissions(rules: Sequence[Rule], job: Job) -> dict[WorkflowItem, Permissions]:
    """The permissions of every item of `job`, each computed from the definitions.

    Steps are visited in topological order, so a step's sources are known
    when it is reached.
    """
    g = _closures(rules)
    known = g.permissions.get(id(job))
    if known is not None and known[0] is job:
        return known[1]
    workflow = job.workflow
    perms: dict[WorkflowItem, Permissions] = {}

    def of_source(source: Source) -> Permissions:
        if isinstance(source, StepOutputRef):
            return perms[WorkflowItem(ItemKind.STEP_OUTPUT, source.step, source.output)]
        return perms[WorkflowItem(ItemKind.WORKFLOW_INPUT, source)]

    for name in workflow.inputs:
        perms[WorkflowItem(ItemKind.WORKFLOW_INPUT, name)] = [frozenset({job.inputs[name]})]
    for name in workflow.topological_order():
        step = workflow.steps[name]
        k = step.compute_asset
        perms[WorkflowItem(ItemKind.STEP, name)] = [frozenset({k})]
        for input_name, source in step.inputs.items():
            perms[WorkflowItem(ItemKind.STEP_INPUT, name, input_name)] = of_source(source)
        for o, base in step.outputs.items():
            # A null output base is no asset, so it adds no requirement.
            base_perms = [] if base is None else [frozenset({base})]
            perms[WorkflowItem(ItemKind.OUTPUT_BASE, name, o)] = base_perms
            sources = [r for s in step.inputs.values() for r in of_source(s)] + base_perms
            sides = [f(g, req, k, o) for req in sources for f in (_data_side, _compute_side)]
            # dict.fromkeys drops duplicates only, keeping supersets (see the module doc).
            perms[WorkflowItem(ItemKind.STEP_OUTPUT, name, o)] = list(dict.fromkeys(sides))
    for name, ref in workflow.outputs.items():
        perms[WorkflowItem(ItemKind.WORKFLOW_OUTPUT, name)] = of_source(ref)
    g.permissions[id(job)] = (job, perms)
    return perms


# -- decisions -------------------------------------------------------------------------------


def may_access(rules: Sequence[Rule], site: SiteId, perms: Permissions) -> bool:
    """For every requirement, some x in it and some y in up(x) with MayAccess(s, y),
    s being * or in up(site)."""
    g = _closures(rules)
    sites = g.up(InSiteCategory, site)
    return all(
        any(
            isinstance(r, MayAccess)
            and r.asset in g.up(InAssetCollection, x)
            and (isinstance(r.site, Wildcard) or r.site in sites)
            for x in req
            for r in g.rules
        )
        for req in perms
    )


def may_use(rules: Sequence[Rule], party: PartyId, perms: Permissions) -> bool:
    """may_access with MayUse and party categories."""
    g = _closures(rules)
    parties = g.up(InPartyCategory, party)
    return all(
        any(
            isinstance(r, MayUse)
            and r.asset in g.up(InAssetCollection, x)
            and (isinstance(r.party, Wildcard) or r.party in parties)
            for x in req
            for r in g.rules
        )
        for req in perms
    )


def step_items(job: Job, step: str) -> list[WorkflowItem]:
    """The items a site must access to run `step`: inputs, compute asset, bases, outputs."""
    spec = job.workflow.steps[step]
    return [
        *(WorkflowItem(ItemKind.STEP_INPUT, step, i) for i in spec.inputs),
        WorkflowItem(ItemKind.STEP, step),
        *(WorkflowItem(ItemKind.OUTPUT_BASE, step, o) for o in spec.outputs),
        *(WorkflowItem(ItemKind.STEP_OUTPUT, step, o) for o in spec.outputs),
    ]


def step_may_run_at(rules: Sequence[Rule], job: Job, step: str, site: SiteId) -> bool:
    """May `step` run at `site`?"""
    perms = job_permissions(rules, job)
    return all(may_access(rules, site, perms[item]) for item in step_items(job, step))


def outputs_deliverable(rules: Sequence[Rule], job: Job, submitter_site: SiteId) -> bool:
    """May the submitter use, and its site access, every workflow output?"""
    perms = job_permissions(rules, job)
    outputs = [perms[WorkflowItem(ItemKind.WORKFLOW_OUTPUT, n)] for n in job.workflow.outputs]
    return all(
        may_use(rules, job.submitter, p) and may_access(rules, submitter_site, p) for p in outputs
    )


def job_permitted(
    rules: Sequence[Rule], job: Job, plan: Mapping[str, SiteId], submitter_site: SiteId
) -> bool:
    """Each step may run at its planned site and the outputs may be delivered."""
    return all(
        step_may_run_at(rules, job, step, plan[step]) for step in job.workflow.steps
    ) and outputs_deliverable(rules, job, submitter_site)
