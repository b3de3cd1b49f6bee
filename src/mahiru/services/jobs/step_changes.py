"""Telling the sites that wait on a job's steps here that they changed: the long poll.

A job's submitter's site learns how the steps it handed to this site are
doing by asking for their states "once they differ from version V, waiting
at most N seconds" (`/external/jobs/{id}/steps?after=V&wait=N`). The version
is a digest of the states as that caller sees them, so it needs no counter
that a restart would lose: a site that restarted answers at once if its
steps differ from what the caller saw, and waits otherwise.

A waiting request holds no thread: it awaits an asyncio event that
`StepChanges.changed` (called from the step worker's threads whenever a
step of the job was looked at, and when steps are handed over or cancelled)
sets through the event loop. Waits are bounded twice: at most
`MAX_STEP_WAIT` seconds each, and at most `MAX_WAITING_PER_CALLER` at a time
per calling site (more are refused as `RateLimited`, so the caller pauses).

A web worker of a site run as several processes does not see the steps the
loops process runs change: its waits read the states again every
`recheck_every` seconds too (`WEB_WORKER_RECHECK`), so a change there reaches
the caller within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol, TypeVar

from mahiru.errors import RateLimited
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import SiteId

#: The longest a caller may ask to wait for a change (seconds).
MAX_STEP_WAIT = 30.0
#: How many requests of one calling site may wait at the same time.
MAX_WAITING_PER_CALLER = 32
#: How often a web worker's waits read the step states again (seconds).
WEB_WORKER_RECHECK = 0.25


class Shown(Protocol):
    """A step state as a caller is shown it (the egress gate's `StepView`)."""

    def to_dict(self) -> dict[str, Any]:
        """Its JSON form."""
        ...


S = TypeVar("S", bound=Shown)


def steps_version(views: Sequence[Shown]) -> str:
    """The version of the step states `views`: equal views, equal version."""
    return hashlib.sha256(canonical_json([v.to_dict() for v in views])).hexdigest()[:32]


class _Waiter:
    """One waiting request: set from any thread, awaited in its event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        #: Set when the site stops: answer now, whatever the states.
        self.released = False

    def wake(self) -> None:
        with suppress(RuntimeError):  # its loop has closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._event.set)

    def release(self) -> None:
        self.released = True
        self.wake()

    async def wait(self, seconds: float) -> None:
        """Until woken, or `seconds` passed."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)


class StepChanges:
    """The requests that wait for steps of a job here to change, woken when they do."""

    def __init__(self, max_waiting_per_caller: int = MAX_WAITING_PER_CALLER) -> None:
        self._max_per_caller = max_waiting_per_caller
        self._lock = threading.Lock()
        self._waiters: dict[str, set[_Waiter]] = {}
        self._per_caller: Counter[SiteId] = Counter()
        self._recheck: float | None = None

    def recheck_every(self, seconds: float) -> None:
        """Read the states of a waiting request again every `seconds` as well as when
        woken: for a process that does not run the steps it answers for."""
        self._recheck = seconds

    def changed(self, job_id: str) -> None:
        """Steps of `job_id` here changed (or may have): wake whoever waits on them."""
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        for waiter in waiters:
            waiter.wake()

    def release_all(self) -> None:
        """The site stops: answer every waiting request now with the states as they are,
        so that callers ask again (of the site once it is back) instead of waiting on a
        site that will not tell them of a change."""
        with self._lock:
            waiters = [w for group in self._waiters.values() for w in group]
        for waiter in waiters:
            waiter.release()

    def waiting(self, caller: SiteId) -> int:
        """How many requests of `caller` wait now."""
        with self._lock:
            return self._per_caller[caller]

    @contextmanager
    def _watching(self, job_id: str, caller: SiteId) -> Iterator[_Waiter]:
        """A waiter on `job_id`, counted against `caller` (RateLimited past the bound);
        registered before the states are read, so no change between is missed."""
        waiter = _Waiter()
        with self._lock:
            if self._per_caller[caller] >= self._max_per_caller:
                raise RateLimited(
                    f"{caller} has {self._max_per_caller} requests waiting for step states"
                    " already; retry in 1 s",
                    {"retry_after_seconds": 1},
                )
            self._per_caller[caller] += 1
            self._waiters.setdefault(job_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                self._per_caller[caller] -= 1
                if self._per_caller[caller] <= 0:
                    del self._per_caller[caller]
                waiters = self._waiters.get(job_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[job_id]

    async def after(
        self,
        job_id: str,
        caller: SiteId,
        read: Callable[[], list[S]],
        *,
        version: str | None,
        seconds: float,
    ) -> tuple[list[S], str]:
        """The states `read` gives (in a worker thread) and their version, as soon as that
        differs from `version`, or after at most `seconds` (capped at MAX_STEP_WAIT) as
        they are then. Without `version`, or with no time to wait, at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(seconds, 0.0), MAX_STEP_WAIT)
        if version is None or seconds <= 0:
            views = await asyncio.to_thread(read)
            return views, steps_version(views)
        while True:
            with self._watching(job_id, caller) as waiter:
                views = await asyncio.to_thread(read)
                current = steps_version(views)
                left = deadline - loop.time()
                if current != version or left <= 0:
                    return views, current
                await waiter.wait(left if self._recheck is None else min(left, self._recheck))
                if waiter.released:
                    return views, current
