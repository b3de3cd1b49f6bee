"""A map whose edits make a new map sharing everything they did not touch.

The policy's rule indexes hold up to hundreds of thousands of entries, and a
decision in progress must keep the index it started with while a rule is
added. Copying a whole dict per change costs milliseconds at that size; this
map is split into `SHARDS` dicts by key hash, so an edit copies only the
shards it touches (a few hundred entries each) and shares the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: How many dicts a map is split into (a power of two: the shard is `hash & MASK`).
SHARDS = 256
_MASK = SHARDS - 1


class SharedMap(Generic[K, V]):
    """An immutable map; `edit` gives an editor whose `done` is a new map sharing shards."""

    __slots__ = ("_shards", "_size")

    def __init__(self, items: Iterable[tuple[K, V]] = ()) -> None:
        shards: list[dict[K, V]] = [{} for _ in range(SHARDS)]
        for key, value in items:
            shards[hash(key) & _MASK][key] = value
        self._shards = tuple(shards)
        self._size = sum(map(len, shards))

    @classmethod
    def of_shards(cls, shards: list[dict[K, V]]) -> SharedMap[K, V]:
        """A map of `SHARDS` dicts already split by `hash(key) & (SHARDS - 1)`, which it
        takes over (the fast way to load many entries whose hashes are dear)."""
        made: SharedMap[K, V] = cls.__new__(cls)
        made._shards, made._size = tuple(shards), sum(map(len, shards))
        return made

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value for `key`, else `default`."""
        return self._shards[hash(key) & _MASK].get(key, default)

    def __getitem__(self, key: K) -> V:
        return self._shards[hash(key) & _MASK][key]

    def __contains__(self, key: object) -> bool:
        return key in self._shards[hash(key) & _MASK]

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

    __slots__ = ("_copied", "_shards", "_size")

    def __init__(self, base: SharedMap[K, V]) -> None:
        self._shards = list(base._shards)
        self._copied: set[int] = set()
        self._size = base._size

    def _own(self, key: K) -> dict[K, V]:
        index = hash(key) & _MASK
        if index not in self._copied:
            self._shards[index] = dict(self._shards[index])
            self._copied.add(index)
        return self._shards[index]

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value for `key` as edited so far, else `default`."""
        return self._shards[hash(key) & _MASK].get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._shards[hash(key) & _MASK]

    def __setitem__(self, key: K, value: V) -> None:
        shard = self._own(key)
        self._size += key not in shard
        shard[key] = value

    def pop(self, key: K) -> V | None:
        """Remove `key`; its value, or None if it was absent."""
        if key not in self._shards[hash(key) & _MASK]:
            return None
        self._size -= 1
        return self._own(key).pop(key)

    def parts(self) -> tuple[tuple[dict[K, V], ...], int]:
        """The shards and size as edited (for `SharedMap` itself)."""
        return tuple(self._shards), self._size

    def done(self) -> SharedMap[K, V]:
        """The edited map; the editor must not be used after this."""
        edited: SharedMap[K, V] = SharedMap.__new__(SharedMap)
        edited._shards, edited._size = self.parts()
        return edited
