"""Audit records of images moving in and out of a site: what, between whom, how much, how long.

Images going out are counted as they stream (`TransferLog.sending` wraps
the stream); images coming in are recorded once stored (`received`), with
the seconds the copy took.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.model.audit import AuditEntry, AuditKind
from mahiru.model.digests import BlobInfo
from mahiru.model.identifiers import AssetId, ResultId, SiteId
from mahiru.storage import AuditLog


@dataclass(frozen=True, slots=True)
class Transfer:
    """One image moving: `asset` from `source` to `destination`, for `party`'s job `job`;
    `user` is the person whose upload or download it is (None: between sites)."""

    asset: AssetId | ResultId
    source: str
    destination: str
    party: str | None = None
    job: str | None = None
    user: str | None = None
    #: For one file of a data set read live: its path under the set's /data.
    path: str | None = None


class TransferLog:
    """Writes a `transfer` audit record for every image a site sends or receives."""

    def __init__(self, site: SiteId, audit: AuditLog, clock: Clock = SYSTEM_CLOCK) -> None:
        self.site = site
        self._audit = audit
        self._clock = clock

    def started(self) -> float:
        """A start time to give `received` later."""
        return self._clock.monotonic()

    def received(self, transfer: Transfer, image: BlobInfo, started: float) -> None:
        """Record that `transfer` brought in and stored `image`, begun at `started`."""
        self._write("receive", transfer, image.digest, image.size, started, complete=True)

    def sending(
        self, transfer: Transfer, digest: str, chunks: Iterator[bytes], expected: int
    ) -> Iterator[bytes]:
        """`chunks`, recording the transfer once they end: complete if all `expected` bytes went."""
        started = self._clock.monotonic()
        sent = 0
        try:
            for chunk in chunks:
                sent += len(chunk)
                yield chunk
        finally:
            self._write("send", transfer, digest, sent, started, complete=sent == expected)

    def _write(
        self,
        action: str,
        transfer: Transfer,
        digest: str,
        size: int,
        started: float,
        *,
        complete: bool,
    ) -> None:
        other = transfer.destination if action == "send" else transfer.source
        where = {} if transfer.path is None else {"path": transfer.path}
        self._audit.record(
            AuditEntry(
                AuditKind.TRANSFER,
                action,
                "complete" if complete else "incomplete",
                actor=other,
                party=transfer.party,
                job=transfer.job,
                asset=str(transfer.asset),
                details={
                    "from": transfer.source,
                    "to": transfer.destination,
                    "bytes": size,
                    "digest": f"sha256:{digest}",
                    "seconds": round(self._clock.monotonic() - started, 6),
                    **where,
                },
                user=transfer.user,
            )
        )
