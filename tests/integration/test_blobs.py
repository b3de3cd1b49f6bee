"""The content-addressed blob store, on the real file system."""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mahiru.errors import InvalidInput, NotFound
from mahiru.model.digests import BlobInfo
from mahiru.storage import BlobStore
from mahiru.storage.image_check import ImageCheck

pytestmark = pytest.mark.integration

DATA = b"hello, mahiru\n" * 1000
DIGEST = hashlib.sha256(DATA).hexdigest()


def leftovers(root: Path) -> list[Path]:
    """Every file under the store's root."""
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_blob_is_stored_under_its_digest(tmp_path: Path) -> None:
    """The right digest stores the content at root/sha256/<aa>/<digest>, read-only."""
    store = BlobStore(tmp_path)
    info = store.write_stream(iter([DATA[:10], DATA[10:]]), expected_digest=DIGEST)
    assert info == BlobInfo(DIGEST, len(DATA))
    assert store.path(DIGEST) == tmp_path / "sha256" / DIGEST[:2] / DIGEST
    assert leftovers(tmp_path) == [store.path(DIGEST)]
    assert store.has(DIGEST) and store.has(f"sha256:{DIGEST}")
    assert store.size(DIGEST) == len(DATA)
    with store.open(DIGEST) as blob:
        assert blob.read() == DATA
    assert store.path(DIGEST).stat().st_mode & 0o777 == 0o444


def test_a_wrong_digest_stores_nothing(tmp_path: Path) -> None:
    """A digest mismatch is InvalidInput and leaves no file behind."""
    store = BlobStore(tmp_path)
    wrong = "0" * 64
    with pytest.raises(InvalidInput, match="was expected") as caught:
        store.write_stream(iter([DATA]), expected_digest=wrong)
    assert caught.value.details["actual"] == DIGEST
    assert leftovers(tmp_path) == []
    assert not store.has(wrong) and not store.has(DIGEST)


def test_a_failing_source_stores_nothing(tmp_path: Path) -> None:
    """An exception while reading the source leaves no file behind."""
    store = BlobStore(tmp_path)

    def broken() -> Iterator[bytes]:
        yield DATA
        raise ConnectionError("peer went away")

    with pytest.raises(ConnectionError):
        store.write_stream(broken())
    assert leftovers(tmp_path) == []


def test_blobs_are_written_from_files_and_bytes(tmp_path: Path) -> None:
    """A binary file and a bytes value are stored like chunks; the same content once."""
    store = BlobStore(tmp_path)
    assert store.write_stream(io.BytesIO(DATA)) == (DIGEST, len(DATA))
    assert store.write_bytes(DATA, expected_digest=f"sha256:{DIGEST}") == (DIGEST, len(DATA))
    assert list(store.digests()) == [DIGEST]
    with pytest.raises(InvalidInput):
        store.write_stream(DATA)  # type: ignore[arg-type]  # bytes would iterate as ints


def test_bad_digests_are_invalid_input(tmp_path: Path) -> None:
    """Digests are checked before they touch the file system (no path tricks)."""
    store = BlobStore(tmp_path)
    for bad in ("../../etc/passwd", "ABC", "f" * 63, "sha512:" + "f" * 64, DIGEST.upper()):
        with pytest.raises(InvalidInput):
            store.path(bad)
        with pytest.raises(InvalidInput):
            store.write_bytes(DATA, expected_digest=bad)


def test_missing_blobs_are_not_found(tmp_path: Path) -> None:
    """open and size of an unknown digest are NotFound; delete says whether it deleted."""
    store = BlobStore(tmp_path)
    with pytest.raises(NotFound):
        store.open(DIGEST)
    with pytest.raises(NotFound):
        store.size(DIGEST)
    assert store.delete(DIGEST) is False
    store.write_bytes(DATA)
    assert store.delete(DIGEST) is True
    assert not store.has(DIGEST)
    assert list(store.digests()) == []


def test_a_large_blob_streams_without_growing_memory(tmp_path: Path) -> None:
    """50 MB written from a generator peaks at a small fraction of that in memory."""
    store = BlobStore(tmp_path)
    chunk_size, chunks = 1024 * 1024, 50
    expected = hashlib.sha256()
    for index in range(chunks):
        expected.update(bytes([index]) * chunk_size)

    def generate() -> Iterator[bytes]:
        for index in range(chunks):
            yield bytes([index]) * chunk_size

    tracemalloc.start()
    try:
        info = store.write_stream(generate(), expected_digest=expected.hexdigest())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info == (expected.hexdigest(), chunks * chunk_size)
    assert peak < 4 * chunk_size, f"peak {peak} bytes for a {info.size} byte blob"
    assert store.size(info.digest) == chunks * chunk_size


def test_a_crashed_writer_leaves_a_temp_file_that_the_next_start_removes(tmp_path: Path) -> None:
    """A process killed mid-write leaves only a temp file; opening the store deletes it."""
    script = (
        "import os, sys; from pathlib import Path; from mahiru.storage import BlobStore\n"
        "writer = BlobStore(Path(sys.argv[1])).writer()\n"
        "writer.write(b'partial' * 1000)\n"
        "writer._file.flush()\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False, timeout=60)
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and stale[0].parent == tmp_path / "tmp"
    store = BlobStore(tmp_path)
    assert store.removed_stale == 1
    assert leftovers(tmp_path) == []


def test_starting_a_store_spares_files_still_being_written(tmp_path: Path) -> None:
    """Another live writer's temp file is not mistaken for a crashed one's."""
    store = BlobStore(tmp_path)
    with store.writer(expected_digest=DIGEST) as writer:
        writer.write(DATA[:100])
        assert BlobStore(tmp_path).removed_stale == 0
        writer.write(DATA[100:])
        assert writer.commit() == (DIGEST, len(DATA))
    assert leftovers(tmp_path) == [store.path(DIGEST)]


def test_a_writer_can_resume_after_a_dropped_transfer(tmp_path: Path) -> None:
    """A writer kept across a broken connection continues from `size` and verifies the whole."""
    store = BlobStore(tmp_path)
    writer = store.writer(expected_digest=DIGEST)
    writer.write(DATA[:1234])
    # ... the connection drops; the client asks for bytes from writer.size on ...
    writer.write(DATA[writer.size :])
    assert writer.commit() == (DIGEST, len(DATA))
    with pytest.raises(InvalidInput):
        writer.write(b"more")


def test_async_code_can_write_chunks_as_they_arrive(tmp_path: Path) -> None:
    """write_async consumes an async stream, doing disk work off the event loop."""
    store = BlobStore(tmp_path)

    async def arriving() -> AsyncIterator[bytes]:
        for start in range(0, len(DATA), 1000):
            await asyncio.sleep(0)
            yield DATA[start : start + 1000]

    info = asyncio.run(store.write_async(arriving(), expected_digest=DIGEST))
    assert info == (DIGEST, len(DATA))
    with pytest.raises(InvalidInput):
        asyncio.run(store.write_async(arriving(), expected_digest="1" * 64))
    assert leftovers(tmp_path) == [store.path(DIGEST)]


def test_a_checking_copy_of_a_store_refuses_what_its_check_refuses(tmp_path: Path) -> None:
    """`checking` adds a check on top of the store's own; the copy stores nothing it refuses."""
    store = BlobStore(tmp_path)
    checked = store.checking(ImageCheck)
    with pytest.raises(InvalidInput, match="image archive"):
        checked.write_bytes(DATA)
    assert leftovers(tmp_path) == []
    assert store.write_bytes(DATA).digest == DIGEST  # the unchecked original is unchanged
    assert checked.has(DIGEST)  # the same blobs, seen through either
