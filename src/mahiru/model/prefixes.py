"""Ids given by a unique prefix: `mahiru jobs status 3f2a`, `mahiru rules revoke 5f1c2a9e`,
and a review looked up by the start of its id.

Pure: the command line resolves a prefix among the ids a site lists, a repository among
the ids its query found, both with the same rules and messages.
"""

from __future__ import annotations

from collections.abc import Iterable

from mahiru.errors import InvalidInput, NotFound


def resolve_prefix(text: str, ids: Iterable[str], *, what: str, minimum: int, hint: str) -> str:
    """The one id in `ids` that starts with `text` (at least `minimum` characters long).

    Too short is InvalidInput (with `hint`, where to find the ids), no match
    NotFound, several matches InvalidInput naming the first few.
    """
    if len(text) < minimum:
        raise InvalidInput(
            f"{text!r} is too short for a {what}: give at least its first {minimum} characters"
            f" ({hint})"
        )
    matches = sorted({i for i in ids if i.startswith(text)})
    if not matches:
        raise NotFound(f"no {what} here starts with {text!r} ({hint})", {"prefix": text})
    if len(matches) > 1:
        raise InvalidInput(
            f"{text!r} starts {len(matches)} {what}s ({', '.join(matches[:5])}); give more of it",
            {"matches": matches},
        )
    return matches[0]
