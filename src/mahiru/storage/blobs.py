"""Content-addressed files on disk: container image archives, stored by sha256.

A blob lives at `root/sha256/<first two hex digits>/<digest>` and never
changes. It is written through a `BlobWriter` (`mahiru.storage.blob_writer`):
into a temporary file under `root/tmp/`, renamed into place only when complete
and, if a digest was expected, only when it matches. A crash mid-write leaves
only a temporary file, which the next `BlobStore` on the same root deletes.
Digests and checked reads are in `mahiru.storage.digests`; this module
re-exports their names, so callers import everything about blobs from here.
"""

from __future__ import annotations

import asyncio
import copy
import fcntl
import logging
import os
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from mahiru.errors import InvalidInput, NotFound
from mahiru.model.digests import BlobInfo, is_hex_digest, normalise_digest
from mahiru.storage.blob_writer import (
    BlobWriter,
    StreamCheck,
    checks_in_order,
    fsync_dir,
    remove_abandoned,
)
from mahiru.storage.digests import CHUNK_SIZE, DamagedBlob, Readable, read_checked

__all__ = [
    "CHUNK_SIZE",
    "BlobStore",
    "BlobWriter",
    "DamagedBlob",
    "Readable",
    "StreamCheck",
    "read_checked",
]

logger = logging.getLogger("mahiru.storage.blobs")


class BlobStore:
    """Immutable files addressed by their sha256 digest, under one root folder.

    Creating a store deletes temporary files that crashed writers left
    behind; files still being written by another live process (they hold a
    lock on them) are left alone. With `check`, every blob written is checked
    while it streams by a new `check()` and stored only if it passes (a
    site's store of images checks that each is a sound image archive).
    """

    def __init__(self, root: Path, *, check: Callable[[], StreamCheck] | None = None) -> None:
        self.root = Path(root)
        self._checks: tuple[Callable[[], StreamCheck], ...] = () if check is None else (check,)
        self._blobs = self.root / "sha256"
        #: Where writers keep their temporary files (see `BlobWriter`).
        self.temp_dir = self.root / "tmp"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.removed_stale = self.clean_stale()

    @contextmanager
    def images_in_use(self) -> Iterator[None]:
        """Held by one thread of one process at a time (a lock on the store's folder of
        blobs): for deciding whether an image is still used while no other asset is being
        given it, whichever process of the site does either."""
        descriptor = os.open(self._blobs, os.O_RDONLY | os.O_DIRECTORY)
        try:
            # Locks taken through separate opens exclude each other in one process too.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def clean_stale(self) -> int:
        """Delete abandoned temporary files; return how many were deleted."""
        return remove_abandoned(self.temp_dir)

    def checking(self, check: Callable[[], StreamCheck]) -> BlobStore:
        """This store (same root, same blobs), every blob written through it also checked by
        a new `check()`, after the checks the store already had.

        How a site makes whatever store it is given its ingress gate: it never
        trusts a store to check, it adds the check itself.
        """
        checked = copy.copy(self)
        checked._checks = (*self._checks, check)
        return checked

    def writer(self, expected_digest: str | None = None) -> BlobWriter:
        """Start writing a blob chunk by chunk (see `BlobWriter`)."""
        check = checks_in_order([make() for make in self._checks])
        return BlobWriter(self, expected_digest, check)

    def write_stream(
        self, source: Iterable[bytes] | Readable, expected_digest: str | None = None
    ) -> BlobInfo:
        """Store what `source` yields (chunks, or a binary file) and return its digest and size.

        Memory use does not depend on the size of the data. Raises
        InvalidInput if `expected_digest` is given and does not match, in
        which case nothing is stored.
        """
        with self.writer(expected_digest) as writer:
            for chunk in _chunks(source):
                writer.write(chunk)
            return writer.commit()

    def write_bytes(self, data: bytes, expected_digest: str | None = None) -> BlobInfo:
        """Store a small blob held in memory."""
        return self.write_stream([data], expected_digest)

    async def write_async(
        self, chunks: AsyncIterable[bytes], expected_digest: str | None = None
    ) -> BlobInfo:
        """Store chunks as they arrive from async code, doing the disk work in a thread."""
        writer = self.writer(expected_digest)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(writer.write, chunk)
            return await asyncio.to_thread(writer.commit)
        finally:
            writer.abort()  # a no-op after a successful commit

    def path(self, digest: str) -> Path:
        """Where the blob with this digest is (or would be) stored."""
        hex_digest = normalise_digest(digest)
        return self._blobs / hex_digest[:2] / hex_digest

    def has(self, digest: str) -> bool:
        """Whether a blob with this digest is stored."""
        return self.path(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        """Open a stored blob for reading; NotFound if it is not stored."""
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"no blob with digest {digest} is stored", {"digest": digest}) from None

    def size(self, digest: str) -> int:
        """The size in bytes of a stored blob; NotFound if it is not stored."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"no blob with digest {digest} is stored", {"digest": digest}) from None

    def delete(self, digest: str) -> bool:
        """Delete a stored blob; return whether it was there."""
        path = self.path(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        return True

    def read_verified(
        self, digest: str, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """`length` bytes of a blob from `start` (all of it by default), checked on the way.

        As `read_checked`; a blob that no longer has its digest is also set
        aside (`set_aside`), so it is never served again.
        """
        hex_digest = normalise_digest(digest)
        try:
            file = self.path(hex_digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"no blob with digest {digest} is stored", {"digest": digest}) from None
        with file:
            try:
                yield from read_checked(file, hex_digest, start, length)
            except DamagedBlob as damaged:
                self.set_aside(hex_digest)
                raise DamagedBlob(
                    f"blob sha256:{hex_digest} is damaged ({damaged.message}); it was set aside",
                    {"digest": hex_digest},
                ) from None

    def verify(self, digest: str) -> bool:
        """Whether a stored blob still has its digest (it is set aside if not)."""
        try:
            for _ in self.read_verified(digest):
                pass
        except DamagedBlob:
            return False
        return True

    def set_aside(self, digest: str) -> Path | None:
        """Move a damaged blob out of the store (into `damaged/`); where it went, or None."""
        source = self.path(digest)
        target = self.root / "damaged" / source.name
        target.parent.mkdir(exist_ok=True)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            return None
        logger.error("damaged blob set aside", extra={"digest": source.name, "path": str(target)})
        return target

    def digests(self) -> Iterator[str]:
        """The digests of all stored blobs (to find unused ones), in no particular order."""
        for folder in self._blobs.iterdir():
            if folder.is_dir():
                for entry in folder.iterdir():
                    if is_hex_digest(entry.name):
                        yield entry.name


def _chunks(source: Iterable[bytes] | Readable) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        raise InvalidInput("write_stream takes chunks or a file; use write_bytes for bytes")
    if hasattr(source, "read"):
        reader = cast(Readable, source)
        while chunk := reader.read(CHUNK_SIZE):
            yield chunk
    else:
        yield from source
