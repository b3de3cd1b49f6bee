"""Content digests and images in transit: the values blob stores and transfers share.

Digests are sha256, written as 64 lowercase hex digits; a `sha256:` prefix
is accepted on input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from mahiru.errors import InvalidInput

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobInfo(NamedTuple):
    """Stored or transferred content: its sha256 hex digest and its size in bytes."""

    digest: str
    size: int


def normalise_digest(digest: str) -> str:
    """The 64-hex-digit form of a sha256 digest; InvalidInput for anything else."""
    if not isinstance(digest, str):
        raise InvalidInput(f"a digest must be text, got {digest!r}")
    text = digest.removeprefix("sha256:")
    if not _HEX_DIGEST.fullmatch(text):
        raise InvalidInput(f"{digest!r} is not a sha256 digest (64 lowercase hex digits)")
    return text


def is_hex_digest(text: str) -> bool:
    """Whether `text` is a digest in its 64-hex-digit form already."""
    return _HEX_DIGEST.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class ImageStream:
    """An image arriving from another site: the digest and size it announced, and its bytes.

    The bytes are not checked here: whoever stores them checks them against
    `digest` (a blob store writer does) and keeps nothing that does not match.
    `size` is None when the sender did not say.
    """

    digest: str
    size: int | None
    chunks: Iterator[bytes]
