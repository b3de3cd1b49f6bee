"""What a plan costs: the bytes it moves between sites (reference: Planner).

Primary assets stay at the site that stores them: an AssetId names it. A job
input bound to a ResultId (a result of an earlier job) is taken to be at the
submitter's site, where workflow outputs are delivered. Sizes come from the
`sizes` mapping; anything it does not mention counts as 1 byte, so that with
no sizes at all the planner minimises the number of transfers.

The cost of a plan is a sum of node and edge terms:

    cost(plan) = sum over steps s of node(s, plan[s])
               + sum over step edges (p, c) of w(p, c) * [plan[p] != plan[c]]

- node(s, S): the bytes step s pulls when it runs at site S, that is the size
  of every distinct primary asset it needs (the job inputs it reads, its
  compute asset, its non-null output bases) that is stored elsewhere than S,
  plus, if S is not the submitter's site, the size of every distinct output
  of s that is a workflow output (it is delivered to the submitter's site).
- w(p, c), for a step c that reads outputs of step p: the total size of the
  distinct outputs of p that c reads. Each consuming step fetches its own
  copy, so an output read by two steps at the same remote site counts twice;
  this keeps the cost a sum over pairs, which the search relies on.

`plan_cost` computes this directly from the workflow, as a reference;
`CostModel` holds the same quantities as tables indexed by step and site for
the search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mahiru.errors import InvalidInput
from mahiru.model.identifiers import AssetId, ResultId, SiteId
from mahiru.model.workflow import Job, Plan, StepOutputRef

Sizes = Mapping[AssetId | ResultId, int]
"""Sizes in bytes of assets and results; anything missing counts as 1."""

UNKNOWN_SIZE = 1


class _SizeOf:
    """Looks up sizes, computing result ids only if some result has a size."""

    def __init__(self, job: Job, sizes: Sizes | None) -> None:
        self._sizes: Sizes = sizes if sizes is not None else {}
        self._results: dict[StepOutputRef, ResultId] | None = None
        if any(isinstance(key, ResultId) for key in self._sizes):
            self._results = job.result_ids()

    def asset(self, asset: AssetId | ResultId) -> int:
        return self._sizes.get(asset, UNKNOWN_SIZE)

    def result(self, ref: StepOutputRef) -> int:
        if self._results is None:
            return UNKNOWN_SIZE
        return self._sizes.get(self._results[ref], UNKNOWN_SIZE)


def _location(asset: AssetId | ResultId, submitter_site: SiteId) -> SiteId:
    """Where a primary asset is stored (earlier results: at the submitter's site)."""
    return asset.site if isinstance(asset, AssetId) else submitter_site


def _primary_assets(job: Job, step_name: str) -> set[AssetId | ResultId]:
    """The distinct primary assets a step needs: job inputs, compute asset, output bases."""
    step = job.workflow.steps[step_name]
    needed: set[AssetId | ResultId] = {step.compute_asset}
    needed.update(job.inputs[s] for s in step.inputs.values() if not isinstance(s, StepOutputRef))
    needed.update(base for base in step.outputs.values() if base is not None)
    return needed


def plan_cost(
    job: Job, plan: Plan | Mapping[str, SiteId], submitter_site: SiteId, sizes: Sizes | None = None
) -> int:
    """The bytes `plan` moves between sites, by the cost model of this module.

    A reference implementation, written for clarity: tests compare the
    planner's choices against it. Raises InvalidInput if a step is unplanned.
    """
    assignments = plan.assignments if isinstance(plan, Plan) else plan
    workflow = job.workflow
    missing = sorted(set(workflow.steps) - set(assignments))
    if missing:
        raise InvalidInput(f"plan has no site for steps: {', '.join(missing)}", {"steps": missing})
    size_of = _SizeOf(job, sizes)
    cost = 0
    for name, step in workflow.steps.items():
        site = assignments[name]
        for asset in _primary_assets(job, name):
            if _location(asset, submitter_site) != site:
                cost += size_of.asset(asset)
        for ref in {s for s in step.inputs.values() if isinstance(s, StepOutputRef)}:
            if assignments[ref.step] != site:
                cost += size_of.result(ref)
    for ref in set(workflow.outputs.values()):
        if assignments[ref.step] != submitter_site:
            cost += size_of.result(ref)
    return cost


@dataclass(frozen=True, slots=True)
class CostModel:
    """The cost of a job as node and edge tables over step and site indices.

    Steps are indexed in `steps` order, sites in `sites` order. `node[i][k]` is
    node(steps[i], sites[k]); `edges` lists (p, c, w(p, c)) with p before c in
    `steps`, one entry per pair of steps.
    """

    steps: tuple[str, ...]
    sites: tuple[SiteId, ...]
    node: tuple[tuple[int, ...], ...]
    edges: tuple[tuple[int, int, int], ...]

    @classmethod
    def build(
        cls,
        job: Job,
        steps: Sequence[str],
        sites: Sequence[SiteId],
        submitter_site: SiteId,
        sizes: Sizes | None = None,
    ) -> CostModel:
        """Tabulate the cost of `job` for `steps` (in topological order) over `sites`."""
        workflow = job.workflow
        size_of = _SizeOf(job, sizes)
        step_index = {name: i for i, name in enumerate(steps)}
        delivered: dict[str, int] = {}
        for ref in set(workflow.outputs.values()):
            delivered[ref.step] = delivered.get(ref.step, 0) + size_of.result(ref)
        node: list[tuple[int, ...]] = []
        edges: list[tuple[int, int, int]] = []
        for c, name in enumerate(steps):
            pulled_from: dict[SiteId, int] = {}
            total = 0
            for asset in _primary_assets(job, name):
                size = size_of.asset(asset)
                where = _location(asset, submitter_site)
                pulled_from[where] = pulled_from.get(where, 0) + size
                total += size
            away = delivered.get(name, 0)
            node.append(
                tuple(
                    total - pulled_from.get(site, 0) + (away if site != submitter_site else 0)
                    for site in sites
                )
            )
            weights: dict[int, int] = {}
            refs = {s for s in workflow.steps[name].inputs.values() if isinstance(s, StepOutputRef)}
            for ref in refs:
                p = step_index[ref.step]
                weights[p] = weights.get(p, 0) + size_of.result(ref)
            edges.extend((p, c, w) for p, w in sorted(weights.items()))
        return cls(tuple(steps), tuple(sites), tuple(node), tuple(edges))

    def total(self, assignment: Sequence[int]) -> int:
        """The cost of assigning step i to site `assignment[i]` (indices)."""
        cost = sum(self.node[i][k] for i, k in enumerate(assignment))
        cost += sum(w for p, c, w in self.edges if assignment[p] != assignment[c])
        return cost
