"""Ids by unique prefix, as `jobs` and `rules revoke` take them."""

from __future__ import annotations

import pytest

from mahiru.cli.prefixes import resolve_prefix
from mahiru.errors import InvalidInput, NotFound

IDS = ["3f2a0000", "3f2b1111", "9c000000"]


def resolve(text: str) -> str:
    return resolve_prefix(text, IDS, what="job id", minimum=4, hint="see the list")


def test_a_unique_prefix_and_a_whole_id_resolve() -> None:
    assert resolve("3f2a") == "3f2a0000"
    assert resolve("9c000000") == "9c000000"


def test_too_short_none_and_several_are_refused_each_with_its_reason() -> None:
    with pytest.raises(InvalidInput, match="too short for a job id: give at least its first 4"):
        resolve("3f2")
    with pytest.raises(NotFound, match="no job id here starts with 'ffff' \\(see the list\\)"):
        resolve("ffff")
    with pytest.raises(InvalidInput, match="'3f2' starts 2 job ids") as several:
        resolve_prefix("3f2", IDS, what="job id", minimum=3, hint="")
    assert several.value.details == {"matches": ["3f2a0000", "3f2b1111"]}
