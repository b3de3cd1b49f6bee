"""HTTP bodies that misbehave, for tests of clients that download."""

from __future__ import annotations

from collections.abc import Iterator

import httpx


class Dropping(httpx.SyncByteStream):
    """A body that breaks off after `after` bytes, like a dropped connection."""

    def __init__(self, body: bytes, after: int) -> None:
        self.body = body
        self.after = after

    def __iter__(self) -> Iterator[bytes]:
        yield self.body[: self.after]
        raise httpx.ReadError("connection reset by peer")
