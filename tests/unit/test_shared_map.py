"""A SharedMap holds what a dict would, however it is split, and an edit never changes
the map it started from."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mahiru.policy.shared_map import LOAD, SHARDS, SharedMap, shard_count

#: Edits: (key, value) to set, or (key, None) to remove; keys from a range that makes
#: maps of a few entries up to several splits' worth.
EDITS = st.lists(
    st.lists(st.tuples(st.integers(0, 40 * LOAD), st.none() | st.integers()), max_size=120),
    max_size=6,
)


def as_dict(shared: SharedMap[int, int]) -> dict[int, int]:
    return dict(shared.items())


@settings(max_examples=60, deadline=None)
@given(EDITS)
def test_edits_give_the_map_a_dict_would_and_leave_the_old_map_alone(
    rounds: list[list[tuple[int, int | None]]],
) -> None:
    """After each round of sets and removals the map equals a dict edited alike (by get,
    `in`, [], len, iteration) and the map before the round is as it was."""
    shared: SharedMap[int, int] = SharedMap()
    model: dict[int, int] = {}
    for edits in rounds:
        before, before_model = shared, dict(model)
        editor = shared.edit()
        for key, value in edits:
            if value is None:
                assert editor.pop(key) == model.pop(key, None)
            else:
                editor[key] = model[key] = value
        shared = editor.done()
        assert as_dict(shared) == model and len(shared) == len(model)
        assert sorted(shared) == sorted(model)
        for key in range(40 * LOAD + 1):
            assert shared.get(key) == model.get(key)
            assert (key in shared) == (key in model)
        assert all(shared[key] == value for key, value in model.items())
        assert as_dict(before) == before_model and len(before) == len(before_model)


def test_a_map_is_split_as_finely_as_its_size_asks() -> None:
    """One shard for a small map, about LOAD entries a shard as it grows, SHARDS at most,
    whether built at once, by edits or from pre-split shards."""
    assert [shard_count(n) for n in (0, 1, LOAD, LOAD + 1, 4 * LOAD + 1)] == [1, 1, 1, 2, 8]
    assert shard_count(10 * SHARDS * LOAD) == SHARDS
    for size in (3, 5 * LOAD, 100 * LOAD):
        items = [(f"key{i}", i) for i in range(size)]
        split: dict[int, dict[str, int]] = {}
        for key, value in items:
            split.setdefault(hash(key) & (SHARDS - 1), {})[key] = value
        editor: SharedMap[str, int] = SharedMap()
        edited = editor.edit()
        for key, value in items:
            edited[key] = value
        for made in (SharedMap(items), SharedMap.of_shards(split.items()), edited.done()):
            assert len(made._shards) == shard_count(size)
            assert as_dict(made) == dict(items)
