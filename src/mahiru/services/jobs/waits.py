"""What each unfinished step waits for, as the part of the site that met it said: `StepWaits`.

The dispatcher notes a hand-over it cannot make, the step execution what stopped
the step's last try (an input it cannot fetch, live access it cannot get, the
container engine, a reviewer, the steps it needs), and the coordinator what the
sites that run the job's other steps report about them (or that it cannot ask
them). The views of steps (`shown`) carry these as each status's `wait`.

Kept in memory only, like the worker's back-off: a restarted site counts its
tries again from the first. One site is one process, so the background parts
that note and the routes that read share one `StepWaits`.

Each kind of obstacle raises Unavailable (or AwaitingReview) inside the call
that met it; `waiting_on` makes its message say what was being done, so the
execution notes a reason that names the obstacle, not only the error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from mahiru.errors import MahiruError, Unavailable
from mahiru.model.identifiers import JobId, SiteId
from mahiru.model.jobs import StepStatus
from mahiru.model.jobs.waiting import Waiting

#: The details key that marks an error whose message already says what waited.
WAITED_ON = "waited_on"


class StepWaits:
    """The waits of the steps this site knows, by job and step (thread-safe).

    A wait is shown until the step moves on (`moved_on`) or the wait is
    `cleared`; a try that meets the same reason again counts once more and
    keeps its `since`, also after a `moved_on` (a step whose engine keeps
    failing passes its input fetch on every try, and still waits since the
    first); a different reason starts a new wait.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (job, step) -> (the wait, whether it is shown)
        self._waits: dict[tuple[str, str], tuple[Waiting, bool]] = {}

    def note(
        self, job_id: JobId, step: str, reason: str, now: datetime, site: SiteId | None = None
    ) -> Waiting:
        """Note that a try of `step` met `reason` (at the peer `site`) at `now`; the wait."""
        key = (job_id, step)
        with self._lock:
            known = self._waits.get(key)
            if known is not None and known[0].reason == reason:
                wait = known[0].again(site)
            else:
                wait = Waiting(reason, now, 1, site)
            self._waits[key] = (wait, True)
        return wait

    def report(self, status: StepStatus) -> None:
        """Take the wait that the site running the step reported with its status."""
        key = (status.job_id, status.step)
        with self._lock:
            if status.wait is None or status.state.terminal:
                self._waits.pop(key, None)
            else:
                self._waits[key] = (status.wait, True)

    def moved_on(self, job_id: JobId, step: str) -> None:
        """The step got past what it waited for: no longer shown (its count is kept)."""
        key = (job_id, step)
        with self._lock:
            known = self._waits.get(key)
            if known is not None:
                self._waits[key] = (known[0], False)

    def cleared(self, job_id: JobId, step: str) -> None:
        """The step waits no more (it finished, or its wait is someone else's to say)."""
        with self._lock:
            self._waits.pop((job_id, step), None)

    def forget(self, job_id: JobId) -> None:
        """The job ended (or its steps here were cancelled): none of its steps waits."""
        with self._lock:
            for key in [key for key in self._waits if key[0] == job_id]:
                del self._waits[key]

    def of(self, job_id: JobId, step: str) -> Waiting | None:
        """The shown wait of `step`, if it has one."""
        with self._lock:
            known = self._waits.get((job_id, step))
        return known[0] if known is not None and known[1] else None

    def shown(self, statuses: Iterable[StepStatus]) -> list[StepStatus]:
        """`statuses`, each unfinished one with its wait."""
        shown = []
        for status in statuses:
            wait = None if status.state.terminal else self.of(status.job_id, status.step)
            if wait is not None and wait != status.wait:
                status = replace(status, wait=wait)
            shown.append(status)
        return shown


@contextmanager
def waiting_on(what: str, site: SiteId | None = None) -> Iterator[None]:
    """An Unavailable raised inside says it was met doing `what` (with the peer `site`):
    "cannot fetch X from site:a:b: <error>". An error that already says what it was
    met doing (an inner `waiting_on`) passes unchanged."""
    try:
        yield
    except Unavailable as error:
        if _said(error):
            raise
        details: dict[str, object] = {WAITED_ON: what, "site": None if site is None else str(site)}
        raise type(error)(f"{what}: {error.message}", _merged(error.details, details)) from error


def waited_site(error: MahiruError) -> SiteId | None:
    """The peer an error met by a `waiting_on` names, if any."""
    details = error.details if isinstance(error.details, dict) else {}
    text = details.get("site")
    if not isinstance(text, str):
        return None
    try:
        return SiteId.parse(text)
    except MahiruError:
        return None


def _said(error: MahiruError) -> bool:
    return isinstance(error.details, dict) and WAITED_ON in error.details


def _merged(details: object, extra: dict[str, object]) -> dict[str, object]:
    # A rate limit keeps its retry_after_seconds; other details are the inner call's.
    return {**details, **extra} if isinstance(details, dict) else extra
