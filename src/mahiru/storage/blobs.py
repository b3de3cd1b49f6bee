"""Content-addressed files on disk: container image archives, stored by sha256.

A blob lives at `root/sha256/<first two hex digits>/<digest>` and never
changes. Writing streams into a temporary file under `root/tmp/` (same file
system, so the final rename is atomic) while hashing; the data is fsynced and
renamed into place only when complete and, if a digest was expected, only
when it matches. A crash mid-write leaves only a temporary file, which the
next `BlobStore` on the same root deletes.

Digests are 64 lowercase hex digits; a `sha256:` prefix is accepted on input.

From async code (the HTTP API), do not hold the event loop while writing:
either `await store.write_async(request.stream(), expected_digest=...)`, or
keep a `BlobWriter` and hand each chunk to it as it arrives
(`await asyncio.to_thread(writer.write, chunk)`), then
`await asyncio.to_thread(writer.commit)`. A writer also makes transfers
resumable: after a dropped connection, ask the peer for the bytes from
`writer.size` on (an HTTP Range request) and keep writing to the same writer.
"""

from __future__ import annotations

import asyncio
import copy
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, cast

from mahiru.errors import InvalidInput, NotFound
from mahiru.model.digests import BlobInfo, is_hex_digest, normalise_digest

logger = logging.getLogger("mahiru.storage.blobs")

_TMP_PREFIX = "blob-"
#: How much is read from a file-like source at a time.
CHUNK_SIZE = 1024 * 1024


class Readable(Protocol):
    """A binary file-like object to copy a blob from."""

    def read(self, size: int = -1, /) -> bytes: ...


class DamagedBlob(NotFound):
    """A stored blob whose content no longer has its digest (it was set aside)."""


class StreamCheck(Protocol):
    """Checks content as it is written (see `mahiru.storage.image_check.ImageCheck`)."""

    def feed(self, chunk: bytes | bytearray | memoryview) -> None: ...

    def finish(self) -> None: ...


class _Checks:
    """Several checks run on the same stream, in order; the first to refuse wins."""

    def __init__(self, checks: list[StreamCheck]) -> None:
        self._checks = checks

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        for check in self._checks:
            check.feed(chunk)

    def finish(self) -> None:
        for check in self._checks:
            check.finish()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """One blob being written: feed it chunks, then `commit` (or `abort`).

    Used as a context manager it aborts if the block raises or never
    commits. Not thread-safe; use one writer from one task at a time.
    """

    def __init__(
        self, store: BlobStore, expected_digest: str | None = None, check: StreamCheck | None = None
    ) -> None:
        self._store = store
        self._expected = None if expected_digest is None else normalise_digest(expected_digest)
        self._check = check
        self._hash = hashlib.sha256()
        self._size = 0
        self._file, self._path = store._new_temp_file()
        self._done = False

    @property
    def size(self) -> int:
        """How many bytes were written so far."""
        return self._size

    def write(self, chunk: bytes) -> None:
        """Append a chunk (it is hashed and written, not kept)."""
        if self._done:
            raise InvalidInput("this blob writer is already committed or aborted")
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidInput(f"blob chunks must be bytes, got {type(chunk).__name__}")
        if self._check is not None:
            try:
                self._check.feed(chunk)
            except BaseException:
                self.abort()
                raise
        self._hash.update(chunk)
        self._file.write(chunk)
        self._size += len(chunk)

    def commit(self) -> BlobInfo:
        """Make the blob durable and visible under its digest, and return it.

        Raises InvalidInput (and stores nothing) if the content does not have
        the expected digest. Storing content that is already there is a no-op.
        """
        if self._done:
            raise InvalidInput("this blob writer is already committed or aborted")
        digest = self._hash.hexdigest()
        if self._check is not None:
            try:
                self._check.finish()
            except BaseException:
                self.abort()
                raise
        if self._expected is not None and digest != self._expected:
            self.abort()
            raise InvalidInput(
                f"content has sha256 {digest}, but {self._expected} was expected",
                {"expected": self._expected, "actual": digest, "size": self._size},
            )
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            final = self._store.path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                self.abort()  # same content is already stored
            else:
                os.chmod(self._path, 0o444)
                os.rename(self._path, final)
                self._done = True
                self._file.close()  # releases the lock, after the rename
                _fsync_dir(final.parent)
        except BaseException:
            self.abort()
            raise
        return BlobInfo(digest, self._size)

    def abort(self) -> None:
        """Throw away what was written; does nothing once committed or aborted."""
        if self._done:
            return
        self._done = True
        self._path.unlink(missing_ok=True)
        self._file.close()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()


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
        self._tmp = self.root / "tmp"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self.removed_stale = self.clean_stale()

    def clean_stale(self) -> int:
        """Delete abandoned temporary files; return how many were deleted."""
        removed = 0
        for entry in self._tmp.iterdir():
            try:
                fd = os.open(entry, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                # A live writer holds an exclusive lock on its file until it
                # is renamed or removed; a crashed writer's lock died with it.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                entry.unlink(missing_ok=True)
                removed += 1
            finally:
                os.close(fd)
        return removed

    def _new_temp_file(self) -> tuple[BinaryIO, Path]:
        """A fresh, locked temporary file in the store's temp folder."""
        while True:
            fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self._tmp)
            fcntl.flock(fd, fcntl.LOCK_EX)
            path = Path(name)
            # Another process's clean_stale may have removed the file between
            # mkstemp and flock; if so, this file is unreachable: start over.
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return os.fdopen(fd, "wb"), path
            except FileNotFoundError:
                pass
            os.close(fd)

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
        if not self._checks:
            return BlobWriter(self, expected_digest, None)
        if len(self._checks) == 1:
            return BlobWriter(self, expected_digest, self._checks[0]())
        return BlobWriter(self, expected_digest, _Checks([make() for make in self._checks]))

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
        _fsync_dir(path.parent)
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


def _chunks(source: Iterable[bytes] | Readable) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        raise InvalidInput("write_stream takes chunks or a file; use write_bytes for bytes")
    if hasattr(source, "read"):
        reader = cast(Readable, source)
        while chunk := reader.read(CHUNK_SIZE):
            yield chunk
    else:
        yield from source
