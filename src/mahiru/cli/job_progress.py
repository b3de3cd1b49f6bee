"""The progress lines `mahiru jobs wait` and `jobs submit --wait` write on stderr.

A line when the job's or a step's state changes, or what a step waits for;
while a step waits, the line again every REPEAT_WAITS seconds, so its count of
tries shows that the site keeps trying.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mahiru.client.jobs import JobView

#: How often a progress line is shown again while a step waits (seconds), with its count.
REPEAT_WAITS = 10.0


class ProgressLines:
    """Called with each view of the job polled; writes the lines worth writing."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._last: object = None  # what the last line said
        self._shown_at = 0.0

    def __call__(self, current: JobView) -> None:
        steps = [(s.step, s.state, s.wait and s.wait.reason) for s in current.steps]
        said = (current.status.state, steps)
        now = self._monotonic()
        waiting = any(s.wait is not None for s in current.steps)
        if said == self._last and not (waiting and now - self._shown_at >= REPEAT_WAITS):
            return
        line = ", ".join(
            f"{s.step} {s.state.value}" + ("" if s.wait is None else f" ({s.wait.describe()})")
            for s in current.steps
        )
        click.echo(f"{current.status.state.value}: {line}", err=True)
        self._last, self._shown_at = said, now
