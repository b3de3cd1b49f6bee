"""Downloading images from a site: streamed, hashed, resumed, kept only if the digest matches.

Downloads are written to a temporary file next to the destination while
hashing, or handed over as a stream of chunks for the caller to store and
check; after a dropped connection they resume with an HTTP Range request
(If-Range on the expected digest).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import httpx

from mahiru.client.http import check, refused, unreachable
from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Conflict, InvalidInput, Unavailable
from mahiru.model.digests import BlobInfo, ImageStream, normalise_digest
from mahiru.retry import Backoff

logger = logging.getLogger("mahiru.client.site")

#: The header carrying an image's digest, `sha256:<hex>`, on uploads and downloads.
DIGEST_HEADER = "X-Mahiru-Digest"
CHUNK_SIZE = 1024 * 1024
DOWNLOAD_ATTEMPTS = 4
#: The pause before each new attempt: 0.4 s, doubling, at most 5 s.
DOWNLOAD_BACKOFF = Backoff(0.4, cap=5.0)

#: Called as `progress(phase, done, total)`; phase is "hash", "upload" or "download".
Progress = Callable[[str, int, int], None]


class FileSink:
    """A temporary file next to the destination, kept between calls so downloads resume."""

    def __init__(self, partial: Path, resume: bool) -> None:
        self.partial = partial
        self._hash = hashlib.sha256()
        self._file = partial.open("r+b" if resume and partial.exists() else "w+b")
        while chunk := self._file.read(CHUNK_SIZE):
            self._hash.update(chunk)
        self._size = self._file.tell()

    @property
    def size(self) -> int:
        return self._size

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self._size += len(chunk)

    def restart(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.sha256()
        self._size = 0

    def finish(self, dest: Path, digest: str) -> BlobInfo:
        """Move the file to `dest` if it has `digest`; else delete it and raise InvalidInput."""
        actual = self._hash.hexdigest()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if actual != digest:
            self.partial.unlink(missing_ok=True)
            raise InvalidInput(
                f"the downloaded image has sha256 {actual}, but the site announced {digest}",
                {"expected": digest, "actual": actual},
            )
        os.replace(self.partial, dest)
        return BlobInfo(digest, self._size)

    def close(self) -> None:
        self._file.close()


class ImageDownload:
    """One image coming from a site, its bytes in order, resumed after dropped connections.

    `open` makes the first request, so what the site refuses (denied, not
    found, another digest than expected) is raised there, and `digest` and
    `size` are known after it. `chunks` then yields the image from byte
    `start` on. After a dropped connection the rest is asked for with an
    HTTP Range request (If-Range on the digest); bytes the site sends again
    are skipped, since an image with the same digest has the same bytes.
    Given `restart`, a body that does not continue where the download
    stopped instead starts it over: `restart` throws away what was written.
    Nothing here checks the bytes against the digest: the receiver does.
    """

    def __init__(
        self,
        http: httpx.Client,
        path: str,
        *,
        expected_digest: str | None,
        start: int = 0,
        restart: Callable[[], None] | None = None,
        progress: Progress | None = None,
        attempts: int = DOWNLOAD_ATTEMPTS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.digest = expected_digest
        self._clock = clock
        self.size: int | None = None
        self.received = start
        self._http = http
        self._path = path
        self._restart = restart
        self._progress = progress
        self._attempts = attempts
        self._whole = False  # ask for the whole image next time (the site's range was unusable)
        self._run = self._responses()

    def open(self) -> None:
        """Make the first request (retried while the connection drops); raise what it answers."""
        next(self._run, None)

    def chunks(self) -> Iterator[bytes]:
        """The image's bytes as they arrive, after `open`."""
        return self._run

    def close(self) -> None:
        """Drop the connection, if one is still open."""
        self._run.close()

    def _responses(self) -> Generator[bytes, None, None]:
        """Yields b"" once the first response is checked, then the image's bytes."""
        opened = False
        last_error: Exception | None = None
        for attempt in range(self._attempts):
            if attempt:
                self._clock.sleep(DOWNLOAD_BACKOFF.delay(attempt))
            headers: dict[str, str] = {}
            if self.received and not self._whole:
                headers["Range"] = f"bytes={self.received}-"
                if self.digest is not None:
                    headers["If-Range"] = f'"sha256:{self.digest}"'
            try:
                with self._http.stream("GET", self._path, headers=headers) as response:
                    if response.status_code == 416:  # we hold more than the image: start over
                        self._line_up(-1)
                        continue
                    check(response)
                    digest = normalise_digest(response.headers.get(DIGEST_HEADER, ""))
                    if self.digest is not None and digest != self.digest:
                        raise Conflict(
                            f"{self._path}: the site serves image sha256:{digest},"
                            f" not the expected sha256:{self.digest}",
                            {"expected": self.digest, "served": digest},
                        )
                    self.digest = digest
                    offset = _range_start(response)
                    skip = self._line_up(offset)
                    if skip is None:
                        continue
                    length = response.headers.get("content-length")
                    total = offset + int(length or 0)
                    if self.size is None and length is not None:
                        self.size = total
                    if not opened:
                        opened = True
                        yield b""
                    # Passed on as received: a chunker would lose its buffer when the link drops.
                    for chunk in response.iter_bytes():
                        if skip:
                            dropped = min(skip, len(chunk))
                            chunk, skip = chunk[dropped:], skip - dropped
                            if not chunk:
                                continue
                        self.received += len(chunk)
                        if self._progress is not None:
                            self._progress("download", self.received, total)
                        yield chunk
                    return
            except httpx.TransportError as error:
                last_error = error
                logger.info(
                    "download interrupted; resuming",
                    extra={"path": self._path, "received": self.received, "error": str(error)},
                )
        where = f"{self._http.base_url}{self._path}"
        if last_error is not None and refused(last_error):
            raise unreachable(last_error, where)
        raise Unavailable(f"{where}: download failed after {self._attempts} attempts: {last_error}")

    def _line_up(self, offset: int) -> int | None:
        """How much of a body starting at `offset` was passed on already; None: ask again."""
        if offset == self.received:
            return 0
        if self._restart is not None:
            self._restart()
            self.received = 0
            return 0 if offset == 0 else None
        if 0 <= offset < self.received:
            return self.received - offset
        self._whole = True
        return None


def _range_start(response: httpx.Response) -> int:
    """Where the body starts in the image: 0, or the start of a 206's Content-Range."""
    if response.status_code != 206:
        return 0
    content_range = response.headers.get("content-range", "")
    try:
        unit, _, span = content_range.partition(" ")
        start = int(span.split("-", 1)[0])
    except ValueError:
        return -1
    return start if unit == "bytes" else -1


def download_to_file(
    http: httpx.Client,
    path: str,
    dest: Path,
    digest: str | None,
    *,
    resume: bool,
    progress: Progress | None,
    clock: Clock = SYSTEM_CLOCK,
) -> BlobInfo:
    """Download an image to `dest` atomically, resuming a partial file from an earlier try."""
    if not dest.parent.is_dir():
        raise InvalidInput(f"{dest.parent}: no such directory")
    tag = digest[:16] if digest else "unknown"
    sink = FileSink(dest.with_name(f".{dest.name}.{tag}.partial"), resume and digest is not None)
    download = ImageDownload(
        http,
        path,
        expected_digest=digest,
        start=sink.size,
        restart=sink.restart,
        progress=progress,
        clock=clock,
    )
    try:
        download.open()
        for chunk in download.chunks():
            sink.write(chunk)
        assert download.digest is not None  # known once open
        return sink.finish(dest, download.digest)
    finally:
        download.close()
        sink.close()


@contextlib.contextmanager
def open_image(
    http: httpx.Client,
    path: str,
    *,
    expected_digest: str | None,
    progress: Progress | None,
    clock: Clock = SYSTEM_CLOCK,
) -> Iterator[ImageStream]:
    """The image at `path` as a stream of chunks, with the digest and size the site announced.

    The request is made on entering, so refusals are raised there; leaving
    closes the connection. The receiver checks the bytes against the digest.
    """
    download = ImageDownload(
        http, path, expected_digest=expected_digest, progress=progress, clock=clock
    )
    try:
        download.open()
        assert download.digest is not None  # known once open
        yield ImageStream(download.digest, download.size, download.chunks())
    finally:
        download.close()
