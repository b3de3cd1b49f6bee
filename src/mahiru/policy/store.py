"""An indexed set of (already validated) rules.

Every lookup the engine makes is a dictionary access: grouping edges by
member, grants by asset, result rules by data or compute id. Transitive
groupings are computed by breadth-first search, memoised until the next
change, and terminate on cycles.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from mahiru.model.identifiers import Identifier
from mahiru.policy.rules import (
    InAssetCategory,
    InAssetCollection,
    InPartyCategory,
    InSiteCategory,
    Rule,
)

GroupingRule: TypeAlias = InAssetCollection | InAssetCategory | InSiteCategory | InPartyCategory
R = TypeVar("R", bound=Rule)
#: How x reaches an ancestor: the grouping rules followed, in order from x.
Path: TypeAlias = tuple[GroupingRule, ...]


class RuleStore:
    """Rules indexed for decisions that never scan all rules."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules: dict[Rule, int] = {}
        # Rules by kind, then by the value of the kind's `index_field`; each list
        # holds rules of its kind only (what `indexed` promises its callers).
        self._by_kind: dict[type, dict[Identifier, list[Any]]] = defaultdict(
            lambda: defaultdict(list)
        )
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
        bucket = self._by_kind[type(rule)][getattr(rule, rule.index_field)]
        if adding:
            bucket.append(rule)
        else:
            bucket.remove(rule)

    def indexed(self, kind: type[R], key: Identifier) -> Sequence[R]:
        """The rules of `kind` whose index field (`kind.index_field`) is `key`."""
        by_key = self._by_kind.get(kind)
        return () if by_key is None else by_key.get(key, ())

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
        reached: dict[Identifier, Path] = {start: ()}
        frontier = [start]
        while frontier:
            following: list[Identifier] = []
            for node in frontier:
                for rule in self.indexed(kind, node):
                    group: Identifier = (
                        rule.collection if isinstance(rule, InAssetCollection) else rule.category
                    )
                    if group not in reached:
                        reached[group] = (*reached[node], rule)
                        following.append(group)
            frontier = following
        self._up_cache[key] = reached
        return reached
