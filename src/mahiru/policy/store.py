"""An indexed set of (already validated) rules.

Every lookup the engine makes is a dictionary access: grouping edges by
member, grants by asset, result rules by data or compute id. Transitive
groupings are computed by breadth-first search, memoised until the next
change, and terminate on cycles.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from mahiru.model.identifiers import Identifier
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

GroupingRule: TypeAlias = InAssetCollection | InAssetCategory | InSiteCategory | InPartyCategory
#: How x reaches an ancestor: the grouping rules followed, in order from x.
Path: TypeAlias = tuple[GroupingRule, ...]


class RuleStore:
    """Rules indexed for decisions that never scan all rules."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules: dict[Rule, int] = {}
        self._parents: dict[type[GroupingRule], dict[Identifier, list[GroupingRule]]] = {
            InAssetCollection: defaultdict(list),
            InAssetCategory: defaultdict(list),
            InSiteCategory: defaultdict(list),
            InPartyCategory: defaultdict(list),
        }
        self.may_access: dict[Identifier, list[MayAccess]] = defaultdict(list)
        self.may_use: dict[Identifier, list[MayUse]] = defaultdict(list)
        self.result_of_data: dict[Identifier, list[ResultOfDataIn]] = defaultdict(list)
        self.result_of_compute: dict[Identifier, list[ResultOfComputeIn]] = defaultdict(list)
        self._up_cache: dict[tuple[type[GroupingRule], Identifier], dict[Identifier, Path]] = {}
        self.version = 0
        for rule in rules:
            self.add(rule)

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule: object) -> bool:
        return rule in self._rules

    def rules(self) -> list[Rule]:
        """All rules, in insertion order."""
        return list(self._rules)

    def add(self, rule: Rule) -> None:
        """Add a rule (adding the same rule twice is a no-op)."""
        if rule in self._rules:
            return
        self._rules[rule] = 1
        self._index(rule, adding=True)

    def remove(self, rule: Rule) -> None:
        """Remove a rule, if present."""
        if self._rules.pop(rule, None) is None:
            return
        self._index(rule, adding=False)

    def _index(self, rule: Rule, *, adding: bool) -> None:
        self.version += 1
        self._up_cache.clear()
        bucket: list[Rule]
        match rule:
            case InAssetCollection():
                bucket = self._parents[InAssetCollection][rule.asset]  # type: ignore[assignment]
            case InAssetCategory():
                bucket = self._parents[InAssetCategory][rule.asset]  # type: ignore[assignment]
            case InSiteCategory():
                bucket = self._parents[InSiteCategory][rule.site]  # type: ignore[assignment]
            case InPartyCategory():
                bucket = self._parents[InPartyCategory][rule.party]  # type: ignore[assignment]
            case MayAccess():
                bucket = self.may_access[rule.asset]  # type: ignore[assignment]
            case MayUse():
                bucket = self.may_use[rule.asset]  # type: ignore[assignment]
            case ResultOfDataIn():
                bucket = self.result_of_data[rule.data]  # type: ignore[assignment]
            case ResultOfComputeIn():
                bucket = self.result_of_compute[rule.compute]  # type: ignore[assignment]
        if adding:
            bucket.append(rule)
        else:
            bucket.remove(rule)

    def up(self, kind: type[GroupingRule], start: Identifier) -> Mapping[Identifier, Path]:
        """`start` and every group it is in, transitively, each with one shortest path.

        `kind` selects the grouping relation: InAssetCollection (assets),
        InAssetCategory (asset categories, i.e. the inverse of down()),
        InSiteCategory or InPartyCategory. Cycles terminate.
        """
        key = (kind, start)
        cached = self._up_cache.get(key)
        if cached is not None:
            return cached
        parents = self._parents[kind]
        reached: dict[Identifier, Path] = {start: ()}
        frontier = [start]
        while frontier:
            following: list[Identifier] = []
            for node in frontier:
                for rule in parents.get(node, ()):
                    group: Identifier = (
                        rule.collection if isinstance(rule, InAssetCollection) else rule.category
                    )
                    if group not in reached:
                        reached[group] = (*reached[node], rule)
                        following.append(group)
            frontier = following
        self._up_cache[key] = reached
        return reached
