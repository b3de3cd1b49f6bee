"""A map whose edits make a new map sharing everything they did not touch.

The policy's rule indexes hold up to hundreds of thousands of entries, and a
decision in progress must keep the index it started with while a rule is
added. Copying a whole dict per change costs milliseconds at that size; this
map is split into `SHARDS` dicts by key hash, so an edit copies only the
shards it touches (a few dozen entries each at that size) and shares the rest.
Shards start as one shared empty dict, so a small map costs little more than
its tuple of references.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: How many dicts a map is split into (a power of two: the shard is `hash & MASK`).
SHARDS = 4096
_MASK = SHARDS - 1
#: Every empty shard: never changed, since editors copy a shard before changing it.
_EMPTY: dict[object, object] = {}


class SharedMap(Generic[K, V]):
    """An immutable map; `edit` gives an editor whose `done` is a new map sharing shards."""

    __slots__ = ("_shards", "_size")

    def __init__(self, items: Iterable[tuple[K, V]] = ()) -> None:
        editor: MapEditor[K, V] = MapEditor(None)
        for key, value in items:
            editor[key] = value
        self._shards, self._size = editor.parts()

    @classmethod
    def of_shards(cls, shards: Iterable[tuple[int, dict[K, V]]]) -> SharedMap[K, V]:
        """A map of dicts already split by `hash(key) & (SHARDS - 1)`, by shard number,
        which it takes over (the fast way to load many entries whose hashes are dear)."""
        editor: MapEditor[K, V] = MapEditor(None)
        for index, shard in shards:
            editor._shards[index] = shard
            editor._size += len(shard)
        made: SharedMap[K, V] = cls.__new__(cls)
        made._shards, made._size = editor.parts()
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

    def __init__(self, base: SharedMap[K, V] | None) -> None:
        if base is None:
            empty: dict[K, V] = _EMPTY  # type: ignore[assignment]  # shared, never changed
            self._shards = [empty] * SHARDS
            self._size = 0
        else:
            self._shards = list(base._shards)
            self._size = base._size
        self._copied: set[int] = set()

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
