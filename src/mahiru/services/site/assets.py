"""The assets a site stores: records in the database, images in the blob store.

Images arrive as a stream and are never held in memory: chunks are hashed and
written to a temporary file as they come, and the image becomes visible only
once it is complete and has the digest the uploader announced. The record is
updated after the image is stored, and deleted before its image, so a crash
never leaves a record whose image is missing.

An asset's image is immutable once set, even across deleting the asset:
assets are referred to by id in rules and in result ids, so new content needs
a new id. A site stores only assets of its owner party's namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable, Iterator
from dataclasses import dataclass, replace

from mahiru.errors import Conflict, InvalidInput, NotFound, PermissionDenied, TooLarge
from mahiru.model.assets import Asset, AssetRecord
from mahiru.model.digests import BlobInfo, normalise_digest
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.people import Person
from mahiru.policy.decisions import Release
from mahiru.services.site.transfers import Transfer, TransferLog
from mahiru.storage import AssetRepository, BlobStore, Database

logger = logging.getLogger("mahiru.site.assets")

#: Chunks from the network are gathered up to this size before each disk write.
WRITE_BUFFER_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageFile:
    """A stored image released to go out: its digest, its size, and its bytes, checked."""

    digest: str
    size: int
    release: Release
    _blobs: BlobStore
    #: Wraps every read (chunks, bytes expected): how the transfer gets recorded.
    _sending: Callable[[Iterator[bytes], int], Iterator[bytes]] | None = None

    def read(self, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """`length` bytes from `start`, verified against the digest as they are read.

        A damaged image is set aside and DamagedBlob raised before its last
        chunk, so a reader never takes bad bytes for the whole image.
        """
        chunks = self._blobs.read_verified(self.digest, start, length)
        if self._sending is None:
            return chunks
        return self._sending(chunks, self.size - start if length is None else length)

    def recorded_by(self, sending: Callable[[Iterator[bytes], int], Iterator[bytes]]) -> ImageFile:
        """This image, each read of it passed through `sending` (which records it)."""
        return replace(self, _sending=sending)


@dataclass(frozen=True, slots=True)
class ImageAudit:
    """What checking every stored image against its record found."""

    checked: int
    damaged: list[str]  # asset ids whose image no longer has its digest (set aside now)
    missing: list[str]  # asset ids whose record names an image that is not there

    @property
    def sound(self) -> bool:
        """Whether every image is there and has its digest."""
        return not self.damaged and not self.missing


class AssetStore:
    """Stores, lists, serves and deletes the assets of one site.

    `max_image_bytes` bounds a single image upload.
    """

    def __init__(
        self,
        database: Database,
        records: AssetRepository,
        blobs: BlobStore,
        *,
        site: SiteId,
        owner: PartyId,
        max_image_bytes: int,
        transfers: TransferLog | None = None,
    ) -> None:
        self._transfers = transfers
        self._site = site
        self._owner = owner
        self._db = database
        self._records = records
        self._blobs = blobs
        self._max_image_bytes = max_image_bytes

    # --- records -----------------------------------------------------------

    def add(self, asset: Asset) -> AssetRecord:
        """Store an asset's description (its image comes separately); return the record.

        Describing a stored asset again with the same kind and metadata
        returns its record unchanged; different content is a Conflict.
        """
        if isinstance(asset.id, AssetId):
            self._check_own(asset.id)
        if asset.image_digest is not None:
            raise InvalidInput(
                f"{asset.id}: upload the image itself, not its digest",
                {"asset": str(asset.id)},
            )
        try:
            stored = self._records.get(asset.id)
        except NotFound:
            return self._records.add(asset)
        if stored.asset.kind == asset.kind and dict(stored.asset.metadata) == dict(asset.metadata):
            return stored
        raise Conflict(
            f"{asset.id} is already stored with a different kind or metadata;"
            " delete it first to replace it",
            {"asset": str(asset.id)},
        )

    def _check_own(self, asset_id: AssetId) -> None:
        """A site stores assets of its own owner's namespace, stored at itself, only."""
        if asset_id.site != self._site:
            raise InvalidInput(
                f"{asset_id} names site {asset_id.site}, but this is {self._site}",
                {"asset": str(asset_id), "site": str(self._site)},
            )
        if asset_id.namespace != self._owner.namespace:
            raise PermissionDenied(
                f"this site stores only assets of {self._owner}'s namespace"
                f" ({self._owner.namespace}); {asset_id} is in namespace {asset_id.namespace!r}",
                {"asset": str(asset_id), "owner": str(self._owner)},
            )

    def get(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """The record of a stored asset; NotFound if it is not stored here."""
        return self._records.get(asset_id)

    def list(self) -> list[AssetRecord]:
        """Every stored asset, by id."""
        return self._records.list()

    def count(self) -> int:
        """How many assets are stored."""
        return self._records.count()

    def delete(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """Remove an asset, and its image unless another asset uses it; return the record."""
        # "Is this image still used?" waits for any attaching of images (in any process
        # of the site), so a delete never removes a file another asset is being given.
        with self._blobs.images_in_use():
            record = self._records.delete(asset_id)
            digest = record.asset.image_digest
            if digest is not None and self._records.image_users(digest) == 0:
                self._blobs.delete(digest)
        logger.info("asset deleted", extra={"asset": str(asset_id), "digest": digest})
        return record

    # --- images ------------------------------------------------------------

    async def upload_image(
        self,
        asset_id: AssetId | ResultId,
        chunks: AsyncIterable[bytes],
        expected_digest: str,
        *,
        sender: str,
        user: Person | None = None,
        declared_size: int | None = None,
    ) -> AssetRecord:
        """Store the image streamed in `chunks` for a described asset; return the new record.

        `sender` is the party uploading it, `user` the person (named in the
        audit record of the transfer).

        The data must have `expected_digest` (`sha256:<hex>`), else nothing is
        stored (InvalidInput). Disk work runs in threads, never on the event
        loop, and memory use does not depend on the image size.
        """
        digest = normalise_digest(expected_digest)
        started = self._transfers.started() if self._transfers is not None else 0.0
        record = await asyncio.to_thread(self._records.get, asset_id)
        current = record.asset.image_digest
        if current is not None and current != digest:
            raise Conflict(
                f"{asset_id} already has an image with digest sha256:{current};"
                " delete the asset to store different content",
                {"asset": str(asset_id), "digest": f"sha256:{current}"},
            )
        if declared_size is not None and declared_size > self._max_image_bytes:
            raise TooLarge(self._too_large(asset_id), {"limit": self._max_image_bytes})
        writer = self._blobs.writer(digest)
        try:
            buffer = bytearray()
            received = 0
            async for chunk in chunks:
                received += len(chunk)
                if received > self._max_image_bytes:
                    raise TooLarge(self._too_large(asset_id), {"limit": self._max_image_bytes})
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER_BYTES:
                    await asyncio.to_thread(writer.write, bytes(buffer))
                    buffer.clear()
            if buffer:
                await asyncio.to_thread(writer.write, bytes(buffer))
            if declared_size is not None and received != declared_size:
                raise InvalidInput(
                    f"the image of {asset_id} ended after {received} of {declared_size} bytes",
                    {"received": received, "declared": declared_size},
                )
            info = await asyncio.to_thread(writer.commit)
        finally:
            writer.abort()  # a no-op once committed
        stored = await asyncio.to_thread(self.attach_image, asset_id, info)
        if self._transfers is not None:
            transfer = Transfer(
                asset_id,
                sender,
                str(self._site),
                party=sender,
                user=None if user is None else str(user),
            )
            await asyncio.to_thread(self._transfers.received, transfer, info, started)
        return stored

    def attach_image(self, asset_id: AssetId | ResultId, image: BlobInfo) -> AssetRecord:
        """Record that a stored asset's image is the stored blob `image`; return the record.

        For images already in the blob store (uploads, fetched inputs,
        results). Raises Conflict if the asset already has another image.
        """
        with self._blobs.images_in_use():
            try:
                with self._db.transaction():
                    record = self._records.get(asset_id)
                    current = record.asset.image_digest
                    if current == image.digest:
                        return record
                    if current is not None:
                        raise Conflict(
                            f"{asset_id} already has an image with digest sha256:{current}",
                            {"asset": str(asset_id), "digest": f"sha256:{current}"},
                        )
                    if isinstance(asset_id, AssetId):
                        self._records.pin_image(asset_id, image.digest)
                    asset = record.asset
                    self._records.delete(asset_id)
                    updated = self._records.add(
                        Asset(asset.id, asset.kind, asset.metadata, image.digest), size=image.size
                    )
            except BaseException:
                # The blob was stored for this asset; if nothing uses it, drop it.
                if self._records.image_users(image.digest) == 0:
                    self._blobs.delete(image.digest)
                raise
        logger.info(
            "asset image stored",
            extra={"asset": str(asset_id), "digest": image.digest, "size": image.size},
        )
        return updated

    def open_image(self, asset_id: AssetId | ResultId, release: Release) -> ImageFile:
        """A stored asset's image, to send where `release` (an allowing decision) says.

        NotFound if it has no image, or its image is missing or was set aside
        as damaged.
        """
        record = self._records.get(asset_id)
        digest = record.asset.image_digest
        if digest is None:
            raise NotFound(f"{asset_id} has no image", {"asset": str(asset_id)})
        try:
            size = self._blobs.size(digest)
        except NotFound:
            raise NotFound(
                f"the image of {asset_id} is missing or damaged at this site",
                {"asset": str(asset_id), "digest": f"sha256:{digest}"},
            ) from None
        return ImageFile(digest, size, release, self._blobs)

    def audit_images(self) -> ImageAudit:
        """Check every stored image against its digest; damaged ones are set aside."""
        damaged: list[str] = []
        missing: list[str] = []
        checked = 0
        for record in self._records.list():
            digest = record.asset.image_digest
            if digest is None:
                continue
            checked += 1
            if not self._blobs.has(digest):
                missing.append(str(record.asset.id))
            elif not self._blobs.verify(digest):
                damaged.append(str(record.asset.id))
        if damaged or missing:
            logger.error(
                "stored images are damaged or missing",
                extra={"damaged": damaged, "missing": missing},
            )
        return ImageAudit(checked, damaged, missing)

    def _too_large(self, asset_id: AssetId | ResultId) -> str:
        return f"the image of {asset_id} is larger than the limit of {self._max_image_bytes} bytes"
