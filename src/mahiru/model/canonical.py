"""The one canonical JSON encoding: the bytes every signature and content hash covers.

Keys sorted at every depth, no whitespace, and only plain JSON (no NaN or
infinities, no other objects, no lone surrogates). Text outside ASCII is
written as `\\u` escapes, except in registry documents, which were defined
from the start to carry it as itself in UTF-8 (`escape_non_ascii=False`).
Rules, revocations, registrations, receipts, result ids and job digests are
all encoded by `canonical_json`; golden vectors in the tests pin its bytes,
since any change would break every signature made before it.
"""

from __future__ import annotations

import json
from typing import Any

from mahiru.errors import InvalidInput


def canonical_json(value: Any, *, escape_non_ascii: bool = True) -> bytes:
    """The canonical bytes of a JSON value; InvalidInput if it is not plain JSON."""
    try:
        text = json.dumps(
            value,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=escape_non_ascii,
            allow_nan=False,
        )
        return text.encode("utf-8")
    except (TypeError, ValueError) as error:
        # UnicodeEncodeError (lone surrogates) is a ValueError too.
        raise InvalidInput(f"not a plain JSON document: {error}") from None
