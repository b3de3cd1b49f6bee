"""Routine polls in the access log: one line per hour, not one per poll.

Every site asks the registry, and each of its peers, for changes every few
seconds (ten by default); logged at info one line per answer, an idle two-site
network would write thousands of lines a day. A poll answered well is logged
at debug and counted; the first one answered after `interval` seconds writes
one info line with the count per caller. A poll that fails is logged like any
other request.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

#: How often the summary of the polls answered is written (seconds).
SUMMARY_INTERVAL = 3600.0


class PollSummary:
    """Counts the polls answered since the last summary; says when the next one is due."""

    def __init__(
        self,
        interval: float = SUMMARY_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._since = monotonic()

    def answered(self, caller: str) -> dict[str, Any] | None:
        """Count a poll by `caller`; the summary to log (count per caller, over how many
        seconds) once `interval` has passed since the last, else None."""
        with self._lock:
            self._counts[caller] += 1
            now = self._monotonic()
            if now - self._since < self._interval:
                return None
            summary = {
                "polls": sum(self._counts.values()),
                "callers": dict(sorted(self._counts.items())),
                "seconds": round(now - self._since),
            }
            self._counts.clear()
            self._since = now
            return summary
