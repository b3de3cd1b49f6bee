"""The other sites as orchestration calls them, and retrying calls that may be unavailable."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Unavailable
from mahiru.model.assets import AssetRecord
from mahiru.model.digests import ImageStream
from mahiru.model.identifiers import AssetId, JobId, ResultId, SiteId
from mahiru.model.jobs import StepAssignment, StepStatus
from mahiru.model.live import LiveAnswer, LiveGrantRequest, LiveReader
from mahiru.model.registry import SiteRecord
from mahiru.model.review_exchange import SignedDecision
from mahiru.model.reviews import Review
from mahiru.retry import Backoff, retry
from mahiru.storage import ReplicaRepository

logger = logging.getLogger("mahiru.site.jobs")

T = TypeVar("T")

#: The longest pause between two tries of a peer that is unavailable (seconds).
PEER_MAX_DELAY = 5.0


class JobPeer(Protocol):
    """Another site's external API, as far as jobs need it."""

    def assign(self, assignment: StepAssignment) -> list[StepStatus]:
        """Hand the site its steps of a job."""
        ...

    def step_statuses(self, job_id: JobId) -> list[StepStatus]:
        """The statuses of the steps of a job the site runs."""
        ...

    def step_changes(
        self, job_id: JobId, version: str | None, seconds: float
    ) -> tuple[list[StepStatus], str]:
        """The statuses of the steps of a job the site runs and their version, once that
        differs from `version`, waiting at most `seconds` (a long poll)."""
        ...

    def cancel(self, job_id: JobId) -> list[StepStatus]:
        """Cancel the site's unfinished steps of a job."""
        ...

    def follow_log(self, job_id: JobId, step: str, seconds: float) -> Iterator[bytes]:
        """The log of a step of a job the site runs, as it is written, until the step ends
        or `seconds` pass; the site's refusals are raised before the first bytes."""
        ...

    def readers(self, job_id: JobId, job_digest: str) -> list[LiveReader]:
        """The unfinished steps of the job with that digest, submitted at the site, that
        read data stored at this site, and where they run."""
        ...

    def live_grant(self, request: LiveGrantRequest) -> str:
        """A token to read a live data set at the site, for one input of one step."""
        ...

    def live_revoke(self, token: str) -> None:
        """End a live grant early."""
        ...

    def live_file(self, token: str, path: str) -> AbstractContextManager[LiveAnswer]:
        """Read the granted data's file listing (`path` "") or one of its files, streaming."""
        ...

    def get_asset(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """The record of an asset stored at the site, if its policy lets this site see it."""
        ...

    def fetch_result(self, result: ResultId) -> AbstractContextManager[ImageStream]:
        """A result's image as a stream, with the digest the site announced."""
        ...

    def fetch_image(
        self, asset_id: AssetId | ResultId, *, expected_digest: str | None = None
    ) -> AbstractContextManager[ImageStream]:
        """A primary asset's image as a stream (Conflict if not `expected_digest`)."""
        ...

    def offer_review(self, review: Review) -> None:
        """Offer `review`, held here, to the site, of its reviewer party."""
        ...

    def review_files(self, review_id: str) -> list[dict[str, object]]:
        """The files of the result of review `review_id`, held at the site, for this
        site's reviewers: `{path, size}` each."""
        ...

    def review_file(self, review_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        """The size and bytes of one file of the result of review `review_id`, held at the
        site (the connection closes when the bytes are read or dropped)."""
        ...

    def report_review(self, review: Review, signed: SignedDecision | None) -> None:
        """Report the decision on review `review`, held at the site, with its signed
        approval or rejection."""
        ...

    def close(self) -> None:
        """Close the connections."""
        ...


JobPeerFactory = Callable[[SiteRecord], JobPeer]


class JobPeers:
    """One client per registered site, made on first use and remade when its record changes."""

    def __init__(self, replica: ReplicaRepository, factory: JobPeerFactory) -> None:
        self._replica = replica
        self._factory = factory
        self._peers: dict[SiteId, tuple[SiteRecord, JobPeer]] = {}
        self._lock = threading.Lock()

    def get(self, site: SiteId) -> JobPeer:
        """The client of `site`; NotFound if the registry replica does not know it."""
        record = self._replica.site(site)
        with self._lock:
            known = self._peers.get(site)
            if known is not None and known[0] == record:
                return known[1]
            if known is not None:
                known[1].close()
            peer = self._factory(record)
            self._peers[site] = (record, peer)
            return peer

    def close(self) -> None:
        """Close every client."""
        with self._lock:
            for _, peer in self._peers.values():
                peer.close()
            self._peers.clear()


def retrying(
    action: Callable[[], T],
    what: str,
    *,
    attempts: int = 4,
    first_delay: float = 0.2,
    stop: threading.Event | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> T:
    """Run `action`, retrying with exponential backoff (up to 5 s) while it raises Unavailable.

    A set `stop` ends the retrying (and cuts a pause short), raising the last error.
    """

    def log(error: Exception, attempt: int, pause: float) -> None:
        message = error.message if isinstance(error, Unavailable) else str(error)
        logger.info(
            "peer unavailable; retrying",
            extra={"action": what, "attempt": attempt, "error": message},
        )

    return retry(
        action,
        backoff=Backoff(first_delay, cap=PEER_MAX_DELAY),
        clock=clock,
        attempts=attempts,
        retry_on=Unavailable,
        on_retry=log,
        stop=stop,
    )
