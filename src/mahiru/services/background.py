"""Supervised background work: one loop for every round-based worker of a service.

A `BackgroundLoop` runs a round, waits, and runs the next, in its own thread,
until stopped. A round that raises something unexpected never ends the
loop: the failure is logged once with the loop's context (with its
traceback the first time, as a count while the same failure repeats),
counted, and the next round comes after a growing pause (a `Backoff` from
the interval to `max_failure_pause`). `guarded` is the same supervision for
one piece of work inside a round (one step, one peer): it hands back what
went wrong instead of letting it escape.

The loop waits on a condition variable, so `wake` and `wake_after` cut a
pause short; such waits run on the system's monotonic clock, as threading's
own timeouts do.

This module holds the only `except Exception` outside the HTTP error
handlers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mahiru.clock import SYSTEM_CLOCK
from mahiru.retry import Backoff

T = TypeVar("T")

#: The longest pause after rounds that keep failing, in seconds.
MAX_FAILURE_PAUSE = 60.0


@dataclass(frozen=True, slots=True)
class Unexpected:
    """Work that raised an exception nobody expected: the exception, kept for the caller."""

    error: Exception

    def describe(self) -> str:
        """`Type: message`, for a step's reason or a peer's status."""
        return f"{type(self.error).__name__}: {self.error}"


def guarded(action: Callable[[], T]) -> T | Unexpected:
    """`action()`, or `Unexpected` holding what it raised; the caller logs and decides."""
    try:
        return action()
    except Exception as error:
        return Unexpected(error)


#: One round of a loop; returns how long to wait before the next (None: the interval).
Round = Callable[[], float | None]


class BackgroundLoop:
    """Runs `round_` in a thread named `name`, every `interval` seconds, while started.

    `wake` starts the next round at once, `wake_after` at the latest after a
    while. `failures` counts rounds that raised; `failure_backoff` gives the
    pause after failed rounds in a row.
    """

    def __init__(
        self,
        name: str,
        round_: Round,
        interval: float,
        *,
        logger: logging.Logger,
        context: Mapping[str, Any] | None = None,
        max_failure_pause: float = MAX_FAILURE_PAUSE,
    ) -> None:
        self.name = name
        self._round = round_
        self._interval = interval
        self._logger = logger
        self._context = dict(context or {})
        self.failure_backoff = Backoff(interval, cap=max_failure_pause)
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._due: float | None = None  # monotonic time by which the next round starts
        self._thread: threading.Thread | None = None
        self._forward: Callable[[float], None] | None = None
        self.failures = 0
        self._in_a_row = 0
        self._last_failure: str | None = None

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called (rounds check this to end early)."""
        return self._stop.is_set()

    @property
    def stop_event(self) -> threading.Event:
        """Set once the loop is told to stop: for waits inside a round."""
        return self._stop

    def forward_wakes(self, forward: Callable[[float], None]) -> None:
        """Hand every wake-up to `forward` (with its delay) instead: for a process that
        serves requests while this loop runs in another one."""
        self._forward = forward

    def start(self) -> None:
        """Start the thread (once); the first round runs at once."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the next round now instead of after the pause."""
        self.wake_after(0.0)

    def wake_after(self, seconds: float) -> None:
        """Run the next round at the latest `seconds` from now (an earlier wake-up stands).

        Asked during a round, it shortens the pause after that round.
        """
        if self._forward is not None:
            self._forward(seconds)
            return
        due = SYSTEM_CLOCK.monotonic() + seconds
        with self._changed:
            if self._due is None or due < self._due:
                self._due = due
                self._changed.notify_all()

    def run_round(self) -> float | None:
        """Run one round now, in the caller's thread and unsupervised (what it raises
        escapes): for tests that drive a service round by round instead of starting it."""
        return self._round()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current round, waiting at most `timeout` seconds for it."""
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            outcome = guarded(self._round)
            if isinstance(outcome, Unexpected):
                pause = self._failed(outcome)
            else:
                self._in_a_row, self._last_failure = 0, None
                pause = self._interval if outcome is None else outcome
            self._pause(pause)

    def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if woken meanwhile (or during the round) or stopped."""
        self.wake_after(seconds)
        with self._changed:
            while self._due is not None and not self._stop.is_set():
                left = self._due - SYSTEM_CLOCK.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            self._due = None

    def _failed(self, outcome: Unexpected) -> float:
        """Log and count a failed round; the pause before the next one."""
        self.failures += 1
        self._in_a_row += 1
        described = outcome.describe()
        context = {**self._context, "loop": self.name, "failures_in_a_row": self._in_a_row}
        if described != self._last_failure:
            self._logger.error(
                "background round failed unexpectedly; retrying",
                exc_info=outcome.error,
                extra=context,
            )
        else:
            self._logger.warning("background round failed again: %s", described, extra=context)
        self._last_failure = described
        return self.failure_backoff.delay(self._in_a_row)
