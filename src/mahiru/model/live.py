"""One answer of a data set's site to a live read: what the relay passes on to the step."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class LiveAnswer:
    """The status of a live file read and, if it succeeded, its bytes as they arrive.

    `message` says why a read failed (status not 200); `length` is the
    Content-Length if the owner sent one.
    """

    status: int
    content_type: str
    length: str | None
    chunks: Iterator[bytes]
    message: str = ""
