"""A map whose edits make a new map sharing everything they did not touch.

The policy's rule indexes hold up to hundreds of thousands of entries, and a
decision in progress must keep the index it started with while a rule is
added. Copying a whole dict per change costs milliseconds at that size; this
map is split into up to `SHARDS` dicts by key hash, so an edit copies only
the shards it touches (a few dozen entries each at that size) and shares the
rest. A map is split only as finely as its size asks (about `LOAD` entries a
shard), so a small map is one dict, not thousands of empty ones to copy and
walk on every edit; an edit that grows a map past that splits it anew, which
happens each time its size doubles and so costs O(1) per entry overall.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: The most dicts a map is split into (a power of two: the shard is `hash & (SHARDS - 1)`).
SHARDS = 4096
#: Entries per shard a map holds before it is split finer (until it has SHARDS).
LOAD = 16
#: Every empty shard: never changed, since editors copy a shard before changing it.
_EMPTY: dict[object, object] = {}


def shard_count(size: int) -> int:
    """How many shards a map of `size` entries has: the least power of two holding it at
    LOAD entries a shard, from 1 to SHARDS."""
    count = 1
    while count < SHARDS and count * LOAD < size:
        count *= 2
    return count


class SharedMap(Generic[K, V]):
    """An immutable map; `edit` gives an editor whose `done` is a new map sharing shards."""

    __slots__ = ("_mask", "_shards", "_size")

    def __init__(self, items: Iterable[tuple[K, V]] = ()) -> None:
        editor: MapEditor[K, V] = MapEditor(None)
        for key, value in items:
            editor[key] = value
        self._shards, self._mask, self._size = editor.parts()

    @classmethod
    def of_shards(cls, shards: Iterable[tuple[int, dict[K, V]]]) -> SharedMap[K, V]:
        """A map of dicts already split by `hash(key) & (SHARDS - 1)`, by shard number,
        which it takes over, or merges if the map is to have fewer shards (the fast way
        to load many entries whose hashes are dear: the merge hashes no key)."""
        given = list(shards)
        size = sum(len(shard) for _, shard in given)
        count = shard_count(size)
        empty: dict[K, V] = _EMPTY  # type: ignore[assignment]  # shared, never changed
        split = [empty] * count
        for index, shard in given:
            # The low bits of a SHARDS index are the index among fewer shards.
            at = index & (count - 1)
            if count == SHARDS or split[at] is empty:
                split[at] = shard
            else:
                split[at] = {**split[at], **shard}
        made: SharedMap[K, V] = cls.__new__(cls)
        made._shards, made._mask, made._size = tuple(split), count - 1, size
        return made

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value for `key`, else `default`."""
        return self._shards[hash(key) & self._mask].get(key, default)

    def __getitem__(self, key: K) -> V:
        return self._shards[hash(key) & self._mask][key]

    def __contains__(self, key: object) -> bool:
        return key in self._shards[hash(key) & self._mask]

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[K]:
        for shard in self._shards:
            yield from shard

    def items(self) -> Iterator[tuple[K, V]]:
        """Every (key, value), shard by shard (no particular order)."""
        for shard in self._shards:
            yield from shard.items()

    def edit(self) -> MapEditor[K, V]:
        """An editor starting from this map (which the edits never change)."""
        return MapEditor(self)


class MapEditor(Generic[K, V]):
    """Edits of a SharedMap: each shard is copied once, on its first edit."""

    __slots__ = ("_copied", "_mask", "_shards", "_size")

    def __init__(self, base: SharedMap[K, V] | None) -> None:
        if base is None:
            empty: dict[K, V] = _EMPTY  # type: ignore[assignment]  # shared, never changed
            self._shards = [empty]
            self._mask = self._size = 0
        else:
            self._shards = list(base._shards)
            self._mask, self._size = base._mask, base._size
        self._copied: set[int] = set()

    def _own(self, key: K) -> dict[K, V]:
        index = hash(key) & self._mask
        if index not in self._copied:
            self._shards[index] = dict(self._shards[index])
            self._copied.add(index)
        return self._shards[index]

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value for `key` as edited so far, else `default`."""
        return self._shards[hash(key) & self._mask].get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._shards[hash(key) & self._mask]

    def __setitem__(self, key: K, value: V) -> None:
        shard = self._own(key)
        self._size += key not in shard
        shard[key] = value

    def pop(self, key: K) -> V | None:
        """Remove `key`; its value, or None if it was absent."""
        if key not in self._shards[hash(key) & self._mask]:
            return None
        self._size -= 1
        return self._own(key).pop(key)

    def parts(self) -> tuple[tuple[dict[K, V], ...], int, int]:
        """The shards, mask and size as edited, split finer first if the size asks it
        (for `SharedMap` itself)."""
        count = shard_count(self._size)
        if count <= len(self._shards):
            return tuple(self._shards), self._mask, self._size
        split: list[dict[K, V]] = [{} for _ in range(count)]
        mask = count - 1
        for shard in self._shards:
            for key, value in shard.items():
                split[hash(key) & mask][key] = value
        return tuple(split), mask, self._size

    def done(self) -> SharedMap[K, V]:
        """The edited map; the editor must not be used after this."""
        edited: SharedMap[K, V] = SharedMap.__new__(SharedMap)
        edited._shards, edited._mask, edited._size = self.parts()
        return edited
