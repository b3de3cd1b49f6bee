"""How many times each kind of shared data was written, by any process of one site.

Parts that keep what they read in memory (the policy snapshot, the rule
feed's version, identified peers) note the count of writes of what they
read, and read again once it moved. With one process the counts are plain
in-memory counters (`LocalWriteCounts`); with several web workers beside a
loops process they live in one small memory-mapped file in the data folder
(`SharedWriteCounts`), so that a write in one process is seen by the next
read in every other at the cost of a memory read, not a database query.

Every writer counts after its transaction commits (and before it returns),
so a reader that sees the count unmoved may trust what it read before.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from enum import Enum
from pathlib import Path


class WriteKind(Enum):
    """The kinds of shared data counted, each with its slot in the shared file."""

    OWN_RULES = 0
    PEER_RULES = 1
    REGISTRY = 2


_SLOT = struct.Struct("<Q")
_SIZE = 64  # eight slots: room for more kinds without changing the file


class WriteCounts:
    """Counts of writes by kind, in this process only (one process serves the site)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(WriteKind, 0)

    @property
    def shared(self) -> bool:
        """Whether other processes see these counts (and write them)."""
        return False

    def count(self, kind: WriteKind) -> int:
        """How many writes of `kind` were counted so far."""
        return self._counts[kind]

    def wrote(self, kind: WriteKind) -> None:
        """Count one write of `kind` (after its transaction ended, committed or not)."""
        with self._lock:
            self._counts[kind] += 1


class SharedWriteCounts(WriteCounts):
    """Counts of writes by kind in a file every process of the site maps (`path`).

    Counts only grow: a count read while another process writes it can at
    worst differ from both values, which a reader takes as a write (one
    extra read), never as no write.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self._fd).st_size < _SIZE:
                os.ftruncate(self._fd, _SIZE)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, _SIZE)

    @property
    def shared(self) -> bool:
        return True

    def count(self, kind: WriteKind) -> int:
        value: int = _SLOT.unpack_from(self._map, kind.value * _SLOT.size)[0]
        return value

    def wrote(self, kind: WriteKind) -> None:
        offset = kind.value * _SLOT.size
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                _SLOT.pack_into(self._map, offset, _SLOT.unpack_from(self._map, offset)[0] + 1)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Unmap the file (the counts stay in it for the other processes)."""
        self._map.close()
        os.close(self._fd)
