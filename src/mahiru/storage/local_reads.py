"""Reads of a local SQLite file quick enough to make on an event loop.

A route that only needs one small value the database holds (the registry's
version) would otherwise open a session in a worker thread, which costs far
more than the read. SQLite in WAL mode lets a reader read the last committed
state without waiting for writers, so one connection of its own, used under a
lock, reads that value in microseconds, and always as committed by any
process or thread at the time of the read.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from mahiru.errors import Unavailable


class LocalReads:
    """One connection of its own to the SQLite file at `path`, read in autocommit."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def scalar(self, sql: str, *parameters: Any) -> Any:
        """The first column of the first row `sql` gives (None if no row).

        The statement runs to its end, so no read transaction stays open
        between calls (holding an old snapshot, or the WAL from being
        checkpointed).
        """
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._open()
                rows = self._connection.execute(sql, parameters).fetchall()
            except sqlite3.Error as error:
                raise Unavailable(f"database {self._path} could not be read: {error}") from error
        return rows[0][0] if rows else None

    def close(self) -> None:
        """Close the connection (a later read opens it again)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _open(self) -> sqlite3.Connection:
        # Not opened read-only: a read-only connection cannot open a WAL database
        # whose shared-memory file is gone (removed when its last connection closed).
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        return connection
