"""Log lines about callers turned away, at most one a minute per reason.

A refused client certificate (in the TLS handshake, where Python's TLS layer
says nothing of it) and a connection cut for holding the server too long are
each logged with their reason, and with the count of those not logged since.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("mahiru.tls")

#: Seconds between two log lines about refused certificates with the same reason.
REFUSAL_LOG_INTERVAL = 60.0


class RefusalLog:
    """Logs `message` for each reason, at most once per interval and reason."""

    def __init__(
        self,
        interval: float = REFUSAL_LOG_INTERVAL,
        message: str = "refused a client certificate during the TLS handshake",
    ) -> None:
        self._interval = interval
        self._message = message
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def note(self, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self._interval:
                self._quiet[reason] = self._quiet.get(reason, 0) + 1
                return
            self._last[reason] = now
            unlogged = self._quiet.pop(reason, 0)
        logger.warning(self._message, extra={"reason": reason, "unlogged_since_last": unlogged})


REFUSALS = RefusalLog()
#: Connections cut for holding the server too long (head, body) or beyond its limits.
SHED = RefusalLog(message="closed a connection that held the server too long")
