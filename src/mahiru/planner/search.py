"""Choosing a site for every step at least cost (reference: Planner).

The cost (see `costs`) is a sum of node terms and pairwise edge terms, so the
problem is a metric labelling on the graph of steps. The search:

1. Takes a maximum-weight spanning forest of the step graph, ignoring edge
   direction (Kruskal; ties by step order). If the graph is a forest
   (chains, in-trees, out-trees, polytrees), that is the whole graph.
2. Solves the forest exactly by dynamic programming. Each tree is rooted at
   its last step in topological order (so a chain or in-tree is processed
   in topological order) and, from the leaves up,
       best[v][S] = node(v, S) + sum over children u of
                    min(best[u][S], min(best[u]) + w(u, v)),
   which costs O(sites) per edge. Sites are then chosen from the root down:
   the root takes its cheapest site, every other step its cheapest site
   given its parent's.
3. Only if edges were left out (a general DAG, for instance a diamond),
   improves the plan on the full cost with at most `MAX_SWEEPS` sweeps in
   step order, moving one step at a time to the site that strictly lowers
   the total cost the most. This is a heuristic: exact for forests, and
   never worse than the forest's optimum evaluated on the full cost.

Sites are indices in id-text order, candidates are scanned in that order
and a site replaces the best so far only if strictly cheaper, so ties always
go to the smallest site id and the same input gives the same plan.
"""

from __future__ import annotations

from collections.abc import Sequence

from mahiru.planner.costs import CostModel

MAX_SWEEPS = 16

_Adjacency = list[list[tuple[int, int]]]


def minimise(model: CostModel, candidates: Sequence[Sequence[int]]) -> list[int]:
    """A site index for every step of `model`, each among its (ascending) `candidates`.

    Optimal when the step graph is a forest; a good, deterministic plan
    otherwise (see the module docstring).
    """
    count = len(model.steps)
    forest, dropped = _spanning_forest(count, model.edges)
    assignment = _solve_forest(model, candidates, forest)
    if dropped:
        _improve(model, candidates, assignment)
    return assignment


def _spanning_forest(count: int, edges: Sequence[tuple[int, int, int]]) -> tuple[_Adjacency, bool]:
    """A maximum-weight spanning forest as adjacency lists, and whether edges were left out."""
    parent = list(range(count))

    def root(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    forest: _Adjacency = [[] for _ in range(count)]
    dropped = False
    for p, c, w in sorted(edges, key=lambda edge: (-edge[2], edge[0], edge[1])):
        rp, rc = root(p), root(c)
        if rp == rc:
            dropped = True
            continue
        parent[rp] = rc
        forest[p].append((c, w))
        forest[c].append((p, w))
    for neighbours in forest:
        neighbours.sort()
    return forest, dropped


def _solve_forest(
    model: CostModel, candidates: Sequence[Sequence[int]], forest: _Adjacency
) -> list[int]:
    """The exact optimum of the node costs plus the forest's edge costs."""
    count = len(model.steps)
    node = model.node
    # Larger than any feasible cost: marks sites that may not run a step.
    infinity = 1 + sum(max(row, default=0) for row in node) + sum(w for _, _, w in model.edges)

    order: list[int] = []
    parent = [-1] * count
    parent_weight = [0] * count
    seen = [False] * count
    for start in range(count - 1, -1, -1):
        if seen[start]:
            continue
        seen[start] = True
        first = len(order)
        order.append(start)
        while first < len(order):
            v = order[first]
            first += 1
            for u, w in forest[v]:
                if not seen[u]:
                    seen[u] = True
                    parent[u] = v
                    parent_weight[u] = w
                    order.append(u)

    best: list[list[int]] = [[] for _ in range(count)]
    lowest = [0] * count
    for v in reversed(order):
        row = [infinity] * len(model.sites)
        node_v = node[v]
        for k in candidates[v]:
            row[k] = node_v[k]
        for u, w in forest[v]:
            if parent[u] != v:
                continue
            via_move = lowest[u] + w
            best_u = best[u]
            for k in candidates[v]:
                stay = best_u[k]
                row[k] += stay if stay < via_move else via_move
        best[v] = row
        lowest[v] = min(row[k] for k in candidates[v])

    assignment = [-1] * count
    for v in order:
        row = best[v]
        here = -1
        if parent[v] >= 0:
            here = assignment[parent[v]]
        w = parent_weight[v]
        chosen = -1
        chosen_cost = 0
        for k in candidates[v]:
            cost = row[k] if k == here else row[k] + w
            if chosen < 0 or cost < chosen_cost:
                chosen, chosen_cost = k, cost
        assignment[v] = chosen
    return assignment


def _improve(model: CostModel, candidates: Sequence[Sequence[int]], assignment: list[int]) -> None:
    """Move single steps to strictly cheaper sites, in step order, until none helps."""
    count = len(model.steps)
    neighbours: _Adjacency = [[] for _ in range(count)]
    for p, c, w in model.edges:
        neighbours[p].append((c, w))
        neighbours[c].append((p, w))
    weight = [sum(w for _, w in adjacent) for adjacent in neighbours]
    for _ in range(MAX_SWEEPS):
        moved = False
        for v in range(count):
            together: dict[int, int] = {}
            for u, w in neighbours[v]:
                k = assignment[u]
                together[k] = together.get(k, 0) + w
            node_v = model.node[v]
            current = assignment[v]
            chosen = current
            chosen_cost = node_v[current] + weight[v] - together.get(current, 0)
            for k in candidates[v]:
                cost = node_v[k] + weight[v] - together.get(k, 0)
                if cost < chosen_cost:
                    chosen, chosen_cost = k, cost
            if chosen != current:
                assignment[v] = chosen
                moved = True
        if not moved:
            return
