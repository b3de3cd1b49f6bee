"""Time as a port: services and repositories ask a `Clock`, the composition root picks it.

Nothing below the entry points reads the system clock, sleeps or draws a
fresh id on its own; each takes a `Clock` (and, where it names new things,
an id source) when it is built, so tests can pass a fixed or fast one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

#: Where new ids (job ids) come from; the default draws 128 random bits.
IdSource = Callable[[], str]


class Clock(Protocol):
    """Wall time for records, a monotonic clock for intervals, and waiting."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for deadlines and back-off."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """`time.sleep(seconds)`."""
        time.sleep(seconds)


#: The one system clock, for defaults; entry points pass it on explicitly.
SYSTEM_CLOCK: Clock = SystemClock()


def random_id() -> str:
    """A fresh id: 32 hexadecimal digits of a random UUID."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC (for entry points and clients)."""
    return SYSTEM_CLOCK.now()
