"""A `Clock` for tests whose time passes only when slept on, so nothing waits for real."""

from __future__ import annotations

from datetime import UTC, datetime


class ManualClock:
    """A clock whose time passes only by sleeping on it; it remembers each sleep."""

    def __init__(self, seconds: float = 1000.0) -> None:
        self.seconds = seconds
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The current (made-up) time, in UTC."""
        return datetime.fromtimestamp(self.seconds, UTC)

    def monotonic(self) -> float:
        """Seconds on the made-up clock."""
        return self.seconds

    def sleep(self, seconds: float) -> None:
        """Move the clock on by `seconds`, at once, and remember the sleep."""
        self.sleeps.append(seconds)
        self.seconds += seconds
