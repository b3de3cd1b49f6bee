"""Getting what a step needs onto this site: primary assets and earlier steps' results.

Each comes from the local store if it is there, else from the site that
holds it, over its external API; that site decides itself whether this site
may have it. Fetched images live in the blob store while steps use them, and
are removed afterwards unless a stored asset has the same image.

A primary asset whose image the container engine already has (loaded for an
earlier step) is not downloaded again: its holder is still asked for the
asset's metadata, so it decides on access every time, and only the download
of an image with the same digest is skipped.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable

from mahiru.errors import NotFound
from mahiru.model.digests import normalise_digest
from mahiru.model.identifiers import AssetId, ResultId
from mahiru.model.jobs import StepInput
from mahiru.model.receipts import ReceiptChain
from mahiru.services.images import receive_image
from mahiru.services.jobs.images import LoadedImages
from mahiru.services.jobs.ledger import JobLedger, KnownJob
from mahiru.services.jobs.peers import JobPeers, retrying
from mahiru.services.jobs.receipts import Receipts
from mahiru.services.jobs.storing import ResultStore
from mahiru.services.site.transfers import TransferLog

logger = logging.getLogger("mahiru.site.jobs")


class InputFetcher:
    """Finds or fetches the image archives of step inputs, and lets go of fetched ones."""

    def __init__(
        self,
        ledger: JobLedger,
        peers: JobPeers,
        results: ResultStore,
        receipts: Receipts,
        transfers: TransferLog,
        images: LoadedImages,
        stop: threading.Event,
    ) -> None:
        self._ledger = ledger
        self._peers = peers
        self._results = results
        self._receipts = receipts
        self._transfers = transfers
        self._images = images
        self._stop = stop
        self._lock = threading.Lock()
        self._users: Counter[str] = Counter()  # fetched blob digest -> steps using it

    def archive(
        self, known: KnownJob, needed: StepInput, producer_inputs: list[StepInput] | None = None
    ) -> tuple[str, bool, ReceiptChain | None]:
        """The blob digest of `needed`'s image archive here, whether it was fetched, and
        (for a result) its verified receipt chain.

        A result is taken only if its receipt chain verifies and, when this job
        made it (`producer_inputs`: what its step runs on), says it was made at
        the planned site on exactly those. Fetched images must be given back
        with `release` once the step is done.

        Raises Unavailable while the holding site cannot be reached (after
        a few retries), and its refusal (PermissionDenied, NotFound) as is.
        """
        asset = needed.asset
        local = self._stored(asset)
        if local is not None and isinstance(asset, ResultId):
            chain = self._results.verified_chain(asset)
            if chain is not None:
                return local, False, chain
            local = None  # no receipt that verifies: never used
        if local is not None:
            return local, False, None
        if needed.site == self._ledger.site:
            raise NotFound(
                f"{needed.asset} ({needed.item}) is not stored at this site",
                {"asset": str(needed.asset)},
            )
        peer = self._peers.get(needed.site)
        logger.info(
            "fetching step input",
            extra={"asset": str(asset), "site": str(needed.site), "item": str(needed.item)},
        )
        if isinstance(asset, AssetId):
            record = retrying(
                lambda: peer.get_asset(asset),
                f"metadata of {asset}",
                stop=self._stop,
                clock=self._ledger.clock,
            )
            announced = record.asset.image_digest
            expected = None if announced is None else normalise_digest(announced)
            if expected is not None and self._images.on_engine(expected):
                logger.info(
                    "step input already loaded",
                    extra={"asset": str(asset), "site": str(needed.site), "digest": expected},
                )
                return expected, False, None
            transfers = self._transfers
            started = transfers.started()
            info = retrying(
                lambda: receive_image(
                    self._results.blobs,
                    peer.fetch_image(asset, expected_digest=expected),
                    str(asset),
                    expected_digest=expected,
                ),
                f"fetch {asset}",
                stop=self._stop,
                clock=self._ledger.clock,
            )
            transfers.received(self._ledger.incoming(known, asset, needed.site), info, started)
            chain = None
        else:
            info, chain = self._receipts.fetch(
                known,
                peer,
                asset,
                needed.site,
                producer_inputs,
                lambda request, what: retrying(
                    request, what, stop=self._stop, clock=self._ledger.clock
                ),
            )
        with self._lock:
            self._users[info.digest] += 1
        return info.digest, True, chain

    def release(self, digests: Iterable[str]) -> None:
        """Remove fetched images no step uses any more (unless a stored asset has them)."""
        for digest in digests:
            with self._lock:
                self._users[digest] -= 1
                if self._users[digest] > 0:
                    continue
                del self._users[digest]
                self._results.drop_if_unused(digest)

    def _stored(self, asset: AssetId | ResultId) -> str | None:
        try:
            record = self._results.asset_records.get(asset)
        except NotFound:
            return None
        digest = record.asset.image_digest
        if digest is None or not self._results.blobs.has(digest):
            return None
        return digest
