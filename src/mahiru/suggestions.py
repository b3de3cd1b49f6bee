""" "Did you mean": the closest of the known words to a mistyped one, for error messages.

Pure: a mistake named with its likely fix saves a trip to the reference.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: How alike (0 to 1, difflib's ratio) a word must be to a known one to be suggested.
CUTOFF = 0.6


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known word most like `word`, if one is alike enough; None otherwise."""
    matches = difflib.get_close_matches(word, list(known), n=1, cutoff=CUTOFF)
    return matches[0] if matches else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """ ": did you mean 'X'?" for the closest known word X, or "" if none is close."""
    match = closest(word, known)
    return f": did you mean {match!r}?" if match is not None else ""
