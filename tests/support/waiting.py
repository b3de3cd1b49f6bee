"""Waiting in tests for something to happen: poll a condition up to a deadline.

A fixed `time.sleep` before an assertion is either too short on a loaded
machine (the test fails for no reason) or longer than needed (the suite is
slow); polling for the condition is neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05
) -> T:
    """Call `condition` until it returns something true, and return that; AssertionError
    naming `what` if it has not after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
