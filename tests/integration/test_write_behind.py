"""Writing a stream to a blob from a thread of its own, in batches (storage/write_behind.py)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mahiru.errors import InvalidInput
from mahiru.storage import BlobStore
from mahiru.storage.image_check import ImageCheck
from mahiru.storage.write_behind import BATCH_BYTES, QUEUED, write_behind

pytestmark = pytest.mark.integration

RECORD = 16 * 1024


def records(data: bytes) -> Iterator[bytes]:
    """`data` as TLS records arrive: 16 KiB at a time."""
    for start in range(0, len(data), RECORD):
        yield data[start : start + RECORD]


def test_every_byte_is_written_in_order(tmp_path: Path) -> None:
    """The stored blob has the stream's digest and size, the last short batch included."""
    data = bytes(range(256)) * (3 * BATCH_BYTES // 256 + 77)
    store = BlobStore(tmp_path)
    with store.writer(hashlib.sha256(data).hexdigest()) as writer:
        write_behind(writer, records(data))
        info = writer.commit()
    assert info.size == len(data)
    assert store.path(info.digest).read_bytes() == data


def test_the_writer_gets_whole_batches_in_another_thread(tmp_path: Path) -> None:
    """Records are gathered into batches of at least BATCH_BYTES (but the last), written
    by a thread other than the one that reads the stream."""
    seen: list[tuple[int, str]] = []

    class Recording:
        def feed(self, chunk: bytes | bytearray | memoryview) -> None:
            seen.append((len(chunk), threading.current_thread().name))

        def finish(self) -> None:
            pass

    store = BlobStore(tmp_path).checking(Recording)
    with store.writer() as writer:
        write_behind(writer, records(b"x" * (2 * BATCH_BYTES + RECORD)))
        writer.commit()
    assert [size for size, _ in seen] == [BATCH_BYTES, BATCH_BYTES, RECORD]
    assert {name for _, name in seen} == {"blob-write-behind"}


def test_a_refusal_of_the_writer_stops_reading_and_is_raised(tmp_path: Path) -> None:
    """The check's InvalidInput reaches the caller, nothing is stored, and the stream is
    not read to its end (only the batches in flight)."""
    read = 0

    def endless() -> Iterator[bytes]:
        nonlocal read
        while True:
            read += RECORD
            yield b"not a tar archive " * (RECORD // 18) + b"\0" * (RECORD % 18)

    store = BlobStore(tmp_path / "store")
    checked = store.checking(ImageCheck)
    with pytest.raises(InvalidInput), checked.writer() as writer:
        write_behind(writer, endless())
    assert read <= (QUEUED + 3) * BATCH_BYTES
    assert list(store.digests()) == []


def test_a_failure_while_reading_is_raised_and_the_thread_ends(tmp_path: Path) -> None:
    """A dropped stream's error reaches the caller; the writer thread does not outlive it."""

    def dropped() -> Iterator[bytes]:
        yield b"x" * (BATCH_BYTES + 1)
        raise ConnectionError("the peer went away")

    with pytest.raises(ConnectionError), BlobStore(tmp_path).writer() as writer:
        write_behind(writer, dropped())
    assert "blob-write-behind" not in {thread.name for thread in threading.enumerate()}


def test_a_chunk_of_a_whole_batch_is_handed_on_without_a_copy(tmp_path: Path) -> None:
    """A chunk of BATCH_BYTES (as the image transport hands them on) reaches the writer as
    it is; smaller ones after it are still gathered."""
    whole = b"y" * BATCH_BYTES
    seen: list[bytes | bytearray | memoryview] = []

    class Recording:
        def feed(self, chunk: bytes | bytearray | memoryview) -> None:
            seen.append(chunk)

        def finish(self) -> None:
            pass

    store = BlobStore(tmp_path).checking(Recording)
    with store.writer() as writer:
        write_behind(writer, iter([whole, b"a", b"b"]))
        writer.commit()
    assert seen[0] is whole
    assert [bytes(chunk) for chunk in seen[1:]] == [b"ab"]
