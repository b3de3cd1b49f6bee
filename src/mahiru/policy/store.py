"""An indexed set of (already validated) rules.

Every lookup the engine makes is a dictionary access: grouping edges by
member, grants by asset, result rules by data or compute id. Transitive
groupings are computed by breadth-first search, memoised until the next
change, and terminate on cycles. Changes make a new store that shares the
indexes' untouched parts (`changed`), so one rule costs microseconds at any size.
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
from mahiru.policy.shared_map import SHARDS, MapEditor, SharedMap

_MASK = SHARDS - 1

GroupingRule: TypeAlias = InAssetCollection | InAssetCategory | InSiteCategory | InPartyCategory
R = TypeVar("R", bound=Rule)
#: How x reaches an ancestor: the grouping rules followed, in order from x.
Path: TypeAlias = tuple[GroupingRule, ...]


class RuleStore:
    """Rules indexed for decisions that never scan all rules.

    `changed` gives a new store with rules added and removed that shares
    everything the change did not touch (so it costs what changed, not the
    number of rules), leaving this one as it was for decisions still using it.
    """

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        # Each rule with its insertion number (`rules()` lists them in that order).
        self._rules: SharedMap[Rule, int] = SharedMap()
        self._next = 0
        # Rules by kind, then by the value of the kind's `index_field`; each list
        # holds rules of its kind only (what `indexed` promises its callers). A
        # list shared with another store is never changed: an edit copies it.
        self._by_kind: dict[type, SharedMap[Identifier, list[Any]]] = {}
        self._up_cache: dict[tuple[type[GroupingRule], Identifier], dict[Identifier, Path]] = {}
        self.version = 0
        self._load(rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule: object) -> bool:
        return rule in self._rules

    def rules(self) -> list[Rule]:
        """All rules, in insertion order."""
        return sorted(self._rules, key=self._rules.__getitem__)

    def add(self, rule: Rule) -> None:
        """Add a rule (adding the same rule twice is a no-op)."""
        self._apply((rule,), ())

    def remove(self, rule: Rule) -> None:
        """Remove a rule, if present."""
        self._apply((), (rule,))

    def changed(self, added: Iterable[Rule] = (), removed: Iterable[Rule] = ()) -> RuleStore:
        """A new store: this one's rules less `removed`, then plus `added` (in order).

        This store is left as it was. The result decides exactly like a store
        built from scratch from its `rules()` in their order.
        """
        store: RuleStore = RuleStore.__new__(RuleStore)
        store._rules, store._next = self._rules, self._next
        store._by_kind = self._by_kind
        store._up_cache = {}
        store.version = self.version
        store._apply(added, removed)
        return store

    def _load(self, rules: Iterable[Rule]) -> None:
        """Index `rules` into this empty store, straight into shards: hashing a rule or an
        identifier is the dear part, so each is hashed no more than a plain dict would."""
        numbers: dict[int, dict[Rule, int]] = defaultdict(dict)
        by_kind: dict[type, dict[int, dict[Identifier, list[Any]]]] = {}
        count = 0
        for rule in rules:
            shard = numbers[hash(rule) & _MASK]
            if shard.setdefault(rule, count) != count:
                continue  # seen before
            count += 1
            kind = type(rule)
            by_key = by_kind.get(kind)
            if by_key is None:
                by_key = by_kind[kind] = defaultdict(dict)
            key = getattr(rule, rule.index_field)
            keys = by_key[hash(key) & _MASK]
            bucket = keys.get(key)
            if bucket is None:
                keys[key] = [rule]
            else:
                bucket.append(rule)
        self._rules = SharedMap.of_shards(numbers.items())
        self._next = self.version = count
        self._by_kind = {
            kind: SharedMap.of_shards(by_key.items()) for kind, by_key in by_kind.items()
        }

    def _apply(self, added: Iterable[Rule], removed: Iterable[Rule]) -> None:
        """Remove, then add, copying only the shards and lists touched."""
        rules = self._rules.edit()
        by_kind = dict(self._by_kind)
        editors: dict[type, MapEditor[Identifier, list[Any]]] = {}
        copied: set[tuple[type, Identifier]] = set()
        changes = 0

        def bucket(rule: Rule) -> list[Any]:
            kind, key = type(rule), getattr(rule, rule.index_field)
            editor = editors.get(kind)
            if editor is None:
                editor = editors[kind] = by_kind.get(kind, SharedMap()).edit()
            if (kind, key) not in copied:
                copied.add((kind, key))
                editor[key] = list(editor.get(key) or ())
            found = editor.get(key)
            assert found is not None  # set just above
            return found

        for rule in removed:
            if rules.pop(rule) is not None:
                bucket(rule).remove(rule)
                changes += 1
        for rule in added:
            if rules.get(rule) is None:
                rules[rule] = self._next
                self._next += 1
                bucket(rule).append(rule)
                changes += 1
        if changes:
            self._rules = rules.done()
            for kind, editor in editors.items():
                by_kind[kind] = editor.done()
            self._by_kind = by_kind
            self.version += changes
            self._up_cache = {}

    def indexed(self, kind: type[R], key: Identifier) -> Sequence[R]:
        """The rules of `kind` whose index field (`kind.index_field`) is `key`."""
        by_key = self._by_kind.get(kind)
        found = None if by_key is None else by_key.get(key)
        return () if found is None else found

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
