"""Writing one blob: stream it into a locked temporary file, check it, rename it into place.

The temporary file lives in the store's temp folder (same file system, so the
final rename is atomic) and is hashed while written; the data is fsynced and
renamed into place only when complete and, if a digest was expected, only
when it matches. A live writer holds an exclusive lock on its temporary file
until it is renamed or removed, so a crashed writer's file is the one nobody
holds a lock on: `remove_abandoned` deletes just those.

From async code (the HTTP API), do not hold the event loop while writing:
either `await store.write_async(request.stream(), expected_digest=...)`, or
keep a `BlobWriter` and hand each chunk to it as it arrives
(`await asyncio.to_thread(writer.write, chunk)`), then
`await asyncio.to_thread(writer.commit)`. A writer also makes transfers
resumable: after a dropped connection, ask the peer for the bytes from
`writer.size` on (an HTTP Range request) and keep writing to the same writer.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol

from mahiru.errors import InvalidInput
from mahiru.model.digests import BlobInfo, normalise_digest

if TYPE_CHECKING:
    from mahiru.storage.blobs import BlobStore

_TMP_PREFIX = "blob-"


class StreamCheck(Protocol):
    """Checks content as it is written (see `mahiru.storage.image_check.ImageCheck`)."""

    def feed(self, chunk: bytes | bytearray | memoryview) -> None: ...

    def finish(self) -> None: ...


class _Checks:
    """Several checks run on the same stream, in order; the first to refuse wins."""

    def __init__(self, checks: Sequence[StreamCheck]) -> None:
        self._checks = checks

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        for check in self._checks:
            check.feed(chunk)

    def finish(self) -> None:
        for check in self._checks:
            check.finish()


def checks_in_order(checks: Sequence[StreamCheck]) -> StreamCheck | None:
    """One check that runs `checks` in order (None for no checks at all)."""
    if not checks:
        return None
    return checks[0] if len(checks) == 1 else _Checks(checks)


def fsync_dir(path: Path) -> None:
    """Make a rename or removal in folder `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_temp_file(folder: Path) -> tuple[BinaryIO, Path]:
    """A fresh temporary file in `folder`, locked for as long as it is open."""
    while True:
        fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=folder)
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = Path(name)
        # Another process's remove_abandoned may have removed the file between
        # mkstemp and flock; if so, this file is unreachable: start over.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return os.fdopen(fd, "wb"), path
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_abandoned(folder: Path) -> int:
    """Delete the temporary files in `folder` no live writer holds; return how many."""
    removed = 0
    for entry in folder.iterdir():
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
        self._file, self._path = new_temp_file(store.temp_dir)
        self._done = False

    @property
    def size(self) -> int:
        """How many bytes were written so far."""
        return self._size

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
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
                fsync_dir(final.parent)
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
