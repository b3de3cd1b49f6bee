"""Reading blob content checked against its sha256 digest (the digest values are in
`mahiru.model.digests`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Protocol

from mahiru.errors import NotFound
from mahiru.model.digests import normalise_digest

#: How much is read from a file-like source at a time.
CHUNK_SIZE = 1024 * 1024


class Readable(Protocol):
    """A binary file-like object to copy a blob from."""

    def read(self, size: int = -1, /) -> bytes: ...


class DamagedBlob(NotFound):
    """A stored blob whose content no longer has its digest (it was set aside)."""


def read_checked(
    file: Readable, digest: str, start: int = 0, length: int | None = None
) -> Iterator[bytes]:
    """`length` bytes of `file` from `start` (all of it by default), checked against `digest`.

    The whole file is hashed while it is read (the part before `start` is
    read but not yielded), and the last chunk is held back until the digest
    is known: if the content does not have `digest`, DamagedBlob is raised
    instead of completing the read, so bad bytes never pass as a whole,
    good file.
    """
    hex_digest = normalise_digest(digest)
    end = None if length is None else start + length
    hasher = hashlib.sha256()
    position = 0
    held: bytes | None = None
    while chunk := file.read(CHUNK_SIZE):
        hasher.update(chunk)
        first, position = position, position + len(chunk)
        lo = max(start - first, 0)
        hi = len(chunk) if end is None else min(end - first, len(chunk))
        if lo < hi:
            if held is not None:
                yield held
            held = chunk[lo:hi]
    if hasher.hexdigest() != hex_digest:
        raise DamagedBlob(
            f"its content has sha256 {hasher.hexdigest()}, not {hex_digest}",
            {"digest": hex_digest},
        )
    if held is not None:
        yield held
