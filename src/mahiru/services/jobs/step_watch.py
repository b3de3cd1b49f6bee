"""The submitter's site learning how its steps at other sites are doing, by long poll.

While started (with the coordinator's loop), a thread per (job, site) asks
that site for the job's step states "once they differ from what I have",
waiting up to `wait` seconds there (`JobPeer.step_changes`), keeps the
newest answer and wakes the coordinator, which takes it in its next round.
So a remote step's end reaches the submitter as soon as the step site
answers, and no site is asked every fraction of a second. A site that is
unreachable, restarted, or does not know the steps yet is asked again after
a growing pause (`RETRY`); its error is handed to the coordinator once per
failed ask, as a direct ask would have raised it. At most `max_watches`
watches run at once (a step site lets a caller hold as many waiting
requests); past that, and whenever the watch is not started (tests that
drive rounds by hand), `report` asks the site directly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from mahiru.errors import NotFound, Unavailable
from mahiru.model.identifiers import JobId, SiteId
from mahiru.model.jobs import StepStatus
from mahiru.retry import Backoff
from mahiru.services.background import Unexpected, guarded
from mahiru.services.jobs.peers import JobPeers
from mahiru.services.jobs.step_changes import MAX_WAITING_PER_CALLER

logger = logging.getLogger("mahiru.site.jobs")

#: How long each ask may wait at the step site for a change (seconds).
WATCH_WAIT = 20.0
#: The pause before asking again a site that failed to answer.
RETRY = Backoff(0.2, cap=5.0)

Key = tuple[JobId, SiteId]


@dataclass(slots=True)
class _Watch:
    """One (job, site) watched: its thread, the newest answer not taken yet, and whether
    it should stop."""

    thread: threading.Thread | None = None
    news: list[StepStatus] | None = None
    error: Exception | None = None
    stop: bool = False


class StepWatch:
    """Holds a long poll per (job, step site) while started; hands the answers to the
    coordinator (`report`) and wakes it (`wake`) when one comes."""

    def __init__(
        self,
        peers: JobPeers,
        wake: Callable[[], None],
        stopping: threading.Event,
        *,
        wait: float = WATCH_WAIT,
        max_watches: int = MAX_WAITING_PER_CALLER,
    ) -> None:
        self._peers = peers
        self._wake = wake
        self._stopping = stopping
        self._wait = wait
        self._max_watches = max_watches
        self._lock = threading.Lock()
        self._watches: dict[Key, _Watch] = {}
        self._started = False
        #: How many asks were answered by a step site (for tests and metrics).
        self.answers = 0

    def start(self) -> None:
        """Watch in threads from now on."""
        with self._lock:
            self._started = True

    def stop(self) -> None:
        """Stop watching (the threads end after their current ask)."""
        with self._lock:
            self._started = False
            for watch in self._watches.values():
                watch.stop = True
            self._watches.clear()

    def report(self, job_id: JobId, site: SiteId) -> list[StepStatus] | None:
        """The states of `site`'s steps of the job if there is news of them since the last
        report (None: nothing new); the error of the last failed ask, once, as raised."""
        key = (job_id, site)
        with self._lock:
            watch = self._watches.get(key)
            if watch is None and self._started and len(self._watches) < self._max_watches:
                watch = self._watches[key] = _Watch()
                watch.thread = threading.Thread(
                    target=self._follow, args=(key, watch), name="mahiru-step-watch", daemon=True
                )
                watch.thread.start()
            if watch is not None:
                news, error = watch.news, watch.error
                watch.news, watch.error = None, None
                ended = watch.thread is not None and not watch.thread.is_alive()
                if ended and news is None and error is None:
                    # It saw every step end, yet they are followed still (a report that
                    # was not taken): the next look watches afresh.
                    del self._watches[key]
                if error is not None:
                    raise error
                return news
        return self._peers.get(site).step_statuses(job_id)  # not watched: ask now

    def watching(self, job_id: JobId, site: SiteId) -> bool:
        """Whether (job, site) is watched by a thread (its news come through `report`)."""
        with self._lock:
            return (job_id, site) in self._watches

    def keep(self, keys: Iterable[Key]) -> None:
        """Stop watching every (job, site) not in `keys` (done, or no longer followed)."""
        wanted = set(keys)
        with self._lock:
            for key in [k for k in self._watches if k not in wanted]:
                self._watches.pop(key).stop = True

    def _ask(
        self, job_id: JobId, site: SiteId, version: str | None
    ) -> tuple[list[StepStatus], str]:
        """The site's states of the job's steps, at once the first time (no `version`)."""
        seconds = 0.0 if version is None else self._wait
        return self._peers.get(site).step_changes(job_id, version, seconds)

    def _follow(self, key: Key, watch: _Watch) -> None:
        """Ask the site again and again, each time for states other than the last seen."""
        job_id, site = key
        version: str | None = None
        failures = 0
        while not watch.stop and not self._stopping.is_set():
            answer = guarded(partial(self._ask, job_id, site, version))
            if isinstance(answer, Unexpected):
                # Handed to the coordinator's round, which fails as a direct ask would.
                error = answer.error
                failures += 1
                with self._lock:
                    watch.error = error
                if not isinstance(error, (Unavailable, NotFound)):
                    logger.info("cannot watch steps at %s: %s", site, error, extra={"job": job_id})
                self._wake()
                self._stopping.wait(RETRY.delay(failures))
                continue
            statuses, current = answer
            failures = 0
            with self._lock:
                self.answers += 1
            if current == version:
                continue  # the wait ran out unchanged
            version = current
            with self._lock:
                watch.news = statuses
            self._wake()
            if statuses and all(s.state.terminal for s in statuses):
                return  # they never change again
