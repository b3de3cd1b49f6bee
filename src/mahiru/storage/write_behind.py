"""Storing a stream of chunks while the next ones arrive: gathered into batches, written behind.

An image from a peer arrives in chunks of any size (a MiB from the image
transport, a TLS record from others). `write_behind` gathers small chunks
into batches of BATCH_BYTES (a chunk that size or larger is a batch of its
own, passed on without a copy) and hands each to a `BlobWriter` in a thread
of its own, so that checking, hashing and writing
one batch (hashing and writing release the GIL) overlap receiving the next,
and the per-call costs are paid per MiB, not per record. At most QUEUED
batches wait for the writer, so memory use stays flat whatever the size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable

from mahiru.storage.blob_writer import BlobWriter

#: How many bytes are gathered before they go to the writer.
BATCH_BYTES = 1024 * 1024
#: How many batches may wait for the writer before receiving waits in turn.
QUEUED = 4


def write_behind(writer: BlobWriter, chunks: Iterable[bytes]) -> None:
    """Write every chunk of `chunks` to `writer`, in batches, from a thread of its own.

    Returns once all were written. Raises what the writer raised first (it
    has aborted itself then, and reading stops), else what reading raised.
    The caller commits or aborts the writer afterwards, as usual.
    """
    batches: queue.Queue[bytes | bytearray | None] = queue.Queue(QUEUED)
    failures: list[BaseException] = []

    def write() -> None:
        while (batch := batches.get()) is not None:
            if failures:
                continue  # drain, so that receiving never waits on a writer that gave up
            try:
                writer.write(batch)
            except BaseException as error:  # handed to the receiving thread, which raises it
                failures.append(error)

    thread = threading.Thread(target=write, name="blob-write-behind", daemon=True)
    thread.start()
    try:
        batch = bytearray()
        for chunk in chunks:
            if not batch and len(chunk) >= BATCH_BYTES:
                batches.put(chunk)  # already a whole batch: passed on without a copy
                if failures:
                    break
                continue
            batch += chunk
            if len(batch) >= BATCH_BYTES:
                batches.put(batch)
                batch = bytearray()
                if failures:
                    break
        if batch and not failures:
            batches.put(batch)
    finally:
        batches.put(None)
        thread.join()
    if failures:
        raise failures[0]
