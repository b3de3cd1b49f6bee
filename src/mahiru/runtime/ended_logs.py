"""The logs of steps that ended lately, kept a little while for those following them.

A step's container (or batch job and its folder) is removed as soon as its
run is judged, which can be a moment before a reader following its log has
read the last of it. A runner hands the end of each step's log to an
`EndedLogs` as the step ends, and answers `step_output` from it once the step
itself is gone. Both bounds are small: the last `STEPS` steps, the last
`BYTES` of each.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

#: How many ended steps' logs are kept.
STEPS = 64
#: How much of each ended step's log is kept: its last bytes.
BYTES = 256 * 1024


class EndedLogs:
    """The ends of the logs of the last `steps` steps that ended, by the runner's step id."""

    def __init__(self, steps: int = STEPS, max_bytes: int = BYTES) -> None:
        self._steps = steps
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        # step id -> (offset of the kept bytes in the whole log, the kept bytes)
        self._logs: OrderedDict[str, tuple[int, bytes]] = OrderedDict()

    def remember(self, step_id: str, log: bytes, offset: int = 0) -> bytes:
        """Keep the end of `log`, the log of the ended step `step_id` from byte `offset` on
        (its end, from the runner); that end."""
        kept = log[-self._max_bytes :]
        with self._lock:
            self._logs[step_id] = (offset + len(log) - len(kept), kept)
            self._logs.move_to_end(step_id)
            while len(self._logs) > self._steps:
                self._logs.popitem(last=False)
        return kept

    def __contains__(self, step_id: object) -> bool:
        """Whether the step `step_id` ended lately (its log is remembered)."""
        with self._lock:
            return step_id in self._logs

    def output(self, step_id: str, start: int) -> bytes | None:
        """The remembered log of `step_id` from byte `start` on; None if not remembered.

        A reader further behind than what is kept gets the kept end, after a line
        saying how much was skipped."""
        with self._lock:
            found = self._logs.get(step_id)
        if found is None:
            return None
        return output_from(*found, start)


def output_from(offset: int, data: bytes, start: int) -> bytes:
    """The bytes from `start` on of a log of which `data` starts at byte `offset`."""
    if start >= offset:
        return data[start - offset :]
    return f"[... {offset - start} bytes of the log not kept ...]\n".encode() + data
