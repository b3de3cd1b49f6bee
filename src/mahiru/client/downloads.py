"""Downloading images from a site: streamed, hashed, resumed, kept only if the digest matches.

Downloads are written to a temporary file next to the destination, or to a
blob store writer, while hashing; after a dropped connection they resume
with an HTTP Range request (If-Range on the expected digest).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx

from mahiru.client.http import check
from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Conflict, InvalidInput, Unavailable
from mahiru.retry import Backoff, retry
from mahiru.storage import BlobInfo, BlobStore, BlobWriter
from mahiru.storage.blobs import normalise_digest

logger = logging.getLogger("mahiru.client.site")

#: The header carrying an image's digest, `sha256:<hex>`, on uploads and downloads.
DIGEST_HEADER = "X-Mahiru-Digest"
CHUNK_SIZE = 1024 * 1024
DOWNLOAD_ATTEMPTS = 4
#: The pause before each new attempt: 0.4 s, doubling, at most 5 s.
DOWNLOAD_BACKOFF = Backoff(0.4, cap=5.0)

#: Called as `progress(phase, done, total)`; phase is "hash", "upload" or "download".
Progress = Callable[[str, int, int], None]


class Sink(Protocol):
    """Where downloaded bytes go; `restart` throws away what was written."""

    @property
    def size(self) -> int: ...

    def write(self, chunk: bytes) -> None: ...

    def restart(self) -> None: ...


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


class BlobSink:
    """A blob store writer; restarting begins a new one."""

    def __init__(self, blobs: BlobStore, expected_digest: str | None) -> None:
        self._blobs = blobs
        self._expected = expected_digest
        self.writer: BlobWriter = blobs.writer(expected_digest)

    @property
    def size(self) -> int:
        return self.writer.size

    def write(self, chunk: bytes) -> None:
        self.writer.write(chunk)

    def restart(self) -> None:
        self.writer.abort()
        self.writer = self._blobs.writer(self._expected)


def stream_image(
    http: httpx.Client,
    path: str,
    sink: Sink,
    *,
    expected_digest: str | None,
    progress: Progress | None,
    attempts: int = DOWNLOAD_ATTEMPTS,
    clock: Clock = SYSTEM_CLOCK,
) -> str:
    """Download an image into `sink`, resuming after dropped connections; return its digest."""

    def attempt() -> str:
        nonlocal expected_digest
        headers: dict[str, str] = {}
        if sink.size:
            headers["Range"] = f"bytes={sink.size}-"
            if expected_digest is not None:
                headers["If-Range"] = f'"sha256:{expected_digest}"'
        with http.stream("GET", path, headers=headers) as response:
            if response.status_code == 416:  # we hold more than the image: start over
                sink.restart()
                raise _StartOver("the site refused the range asked for")
            check(response)
            digest = normalise_digest(response.headers.get(DIGEST_HEADER, ""))
            if expected_digest is not None and digest != expected_digest:
                raise Conflict(
                    f"{path}: the site serves image sha256:{digest},"
                    f" not the expected sha256:{expected_digest}",
                    {"expected": expected_digest, "served": digest},
                )
            expected_digest = digest
            offset = _range_start(response)
            if offset != sink.size:
                sink.restart()
                if offset != 0:
                    raise _StartOver("the site sent another range than asked for")
            total = offset + int(response.headers.get("content-length", 0))
            # Written as received: a chunker would lose its buffer when the link drops.
            for chunk in response.iter_bytes():
                sink.write(chunk)
                if progress is not None:
                    progress("download", sink.size, total)
            return digest

    def interrupted(error: Exception, failures: int, pause: float) -> None:
        if isinstance(error, httpx.TransportError):
            logger.info(
                "download interrupted; resuming",
                extra={"path": path, "received": sink.size, "error": str(error)},
            )

    try:
        return retry(
            attempt,
            backoff=DOWNLOAD_BACKOFF,
            clock=clock,
            attempts=attempts,
            retry_on=(httpx.TransportError, _StartOver),
            on_retry=interrupted,
        )
    except (httpx.TransportError, _StartOver) as error:
        raise Unavailable(
            f"{http.base_url}{path}: download failed after {attempts} attempts: {error}"
        ) from None


class _StartOver(Exception):
    """The site could not resume the download; the next attempt starts from the beginning."""


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
    try:
        served = stream_image(
            http, path, sink, expected_digest=digest, progress=progress, clock=clock
        )
        return sink.finish(dest, served)
    finally:
        sink.close()
