"""Receiving images from other sites into this site's blob store.

Peers hand over an image as a stream (`ImageStream`); it is written through
this site's own `BlobStore`, so it passes the store's ingress checks, and is
kept only if it arrived whole with the digest the peer announced.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from mahiru.errors import InvalidInput
from mahiru.model.digests import BlobInfo, ImageStream, normalise_digest
from mahiru.storage import BlobStore
from mahiru.storage.write_behind import write_behind


def receive_image(
    blobs: BlobStore,
    incoming: AbstractContextManager[ImageStream],
    what: str,
    *,
    expected_digest: str | None = None,
) -> BlobInfo:
    """Store the image `incoming` opens in `blobs`, and return it.

    With `expected_digest`, content with any other digest is refused
    (InvalidInput) and nothing is stored; content that does not have the
    digest the peer announced is refused as well. `what` names the image in
    that refusal.
    """
    expected = None if expected_digest is None else normalise_digest(expected_digest)
    with incoming as image, blobs.writer(expected) as writer:
        # Checked, hashed and written a MiB at a time while the next bytes arrive.
        write_behind(writer, image.chunks)
        info = writer.commit()
    if info.digest != image.digest:
        raise InvalidInput(f"{what}: received sha256 {info.digest}, announced {image.digest}")
    return info
