"""Back-off and retrying: one `Backoff` value for every growing delay, one `retry` loop.

Services and clients alike wait through a `Clock`, so tests pass a clock that
moves when told and no test sleeps for real. A pause that must end early when
its owner stops takes a `stop` event.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mahiru.clock import Clock
from mahiru.errors import Unavailable

T = TypeVar("T")

#: Exception classes a retry may cure.
RetryOn = type[Exception] | tuple[type[Exception], ...]
#: Told of each failed try before the pause: the error, failures so far, the pause.
OnRetry = Callable[[Exception, int, float], None]

#: How often a pause that a stop event may cut short looks at the event (seconds).
STOP_CHECK = 0.05


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays that start at `first` and grow by `factor` per failure, up to `cap`.

    With `jitter` j, a delay d is drawn uniformly from [(1 - j) * d, d] with
    `draw` (uniform in [0, 1)), so clients racing each other spread out while
    `cap` stays the longest wait.
    """

    first: float
    factor: float = 2.0
    cap: float = math.inf
    jitter: float = 0.0
    draw: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.first < 0 or self.factor < 1 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(f"not a back-off: {self!r}")

    def delay(self, failures: int) -> float:
        """The pause after `failures` failures in a row (1: after the first; less counts as 1)."""
        exponent = max(failures, 1) - 1
        # Past the cap the power is not needed (and may overflow).
        try:
            base = min(self.first * self.factor**exponent, self.cap)
        except OverflowError:
            base = self.cap
        if not self.jitter:
            return base
        return base * (1.0 - self.jitter * self.draw())


def retry(
    action: Callable[[], T],
    *,
    backoff: Backoff,
    clock: Clock,
    attempts: int | None = None,
    deadline: float | None = None,
    retry_on: RetryOn = Unavailable,
    retry_if: Callable[[Exception], bool] | None = None,
    on_retry: OnRetry | None = None,
    stop: threading.Event | None = None,
) -> T:
    """`action()`, tried again after `backoff` pauses while it raises a `retry_on` error.

    Gives up, raising the last error, after `attempts` tries, when the next
    try would start more than `deadline` seconds after the first, or once
    `stop` is set. `retry_if` narrows the errors retried further; any other
    error passes straight through.
    """
    if attempts is None and deadline is None:
        raise ValueError("retry needs attempts, a deadline, or both")
    if attempts is not None and attempts < 1:
        raise ValueError("attempts must be at least 1")
    started = clock.monotonic()
    failures = 0
    while True:
        try:
            return action()
        except retry_on as error:
            if retry_if is not None and not retry_if(error):
                raise
            failures += 1
            pause = backoff.delay(failures)
            if (
                (attempts is not None and failures >= attempts)
                or (deadline is not None and clock.monotonic() + pause - started > deadline)
                or (stop is not None and stop.is_set())
            ):
                raise
            if on_retry is not None:
                on_retry(error, failures, pause)
            if not wait(clock, pause, stop):
                raise


def wait(clock: Clock, seconds: float, stop: threading.Event | None = None) -> bool:
    """Sleep `seconds` on `clock`, in short naps while `stop` is given; False if it was set."""
    if stop is None:
        clock.sleep(seconds)
        return True
    end = clock.monotonic() + seconds
    while not stop.is_set():
        left = end - clock.monotonic()
        if left <= 0:
            return True
        clock.sleep(min(left, STOP_CHECK))
    return False
