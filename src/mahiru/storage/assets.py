"""Records of the assets stored at a site: identity, kind, metadata and image.

The images themselves live in the `BlobStore`, by digest. Store the image
first and the record second, and delete the record first and the image
second (if no other record still uses it: `image_users`), so that a crash
leaves at worst an unused image file, never a record without its image.
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Row

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Conflict, InvalidInput, NotFound
from mahiru.model.assets import Asset, AssetKind, AssetRecord
from mahiru.model.identifiers import AssetId, ResultId, parse_identifier
from mahiru.storage.db import Database, insert_ignoring_duplicates
from mahiru.storage.schema import asset_images, assets


class AssetRepository:
    """The asset records of one site."""

    def __init__(self, database: Database, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._db = database
        self._clock = clock

    def add(self, asset: Asset, *, size: int | None = None) -> AssetRecord:
        """Store an asset record and return it.

        Adding the same asset (same kind, metadata, image and size) again
        returns the stored record unchanged; raises Conflict if an asset with
        this id is stored with different content, InvalidInput if the
        metadata is not JSON or the size is negative.
        """
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InvalidInput(f"asset size must be a non-negative integer, got {size!r}")
        metadata = _json_metadata(asset)
        record = AssetRecord(
            Asset(asset.id, asset.kind, metadata, asset.image_digest), size, self._clock.now()
        )
        with self._db.transaction() as session:
            inserted = insert_ignoring_duplicates(
                session,
                assets,
                {
                    "id": str(asset.id),
                    "kind": asset.kind.value,
                    "metadata": metadata,
                    "image_digest": asset.image_digest,
                    "size": size,
                    "created_at": record.created_at,
                },
            )
            if inserted:
                return record
            row = session.execute(select(assets).where(assets.c.id == str(asset.id))).one()
        stored = _record_from_row(row)
        if _content(stored) != _content(record):
            raise Conflict(
                f"{asset.id} is already stored with different content",
                {"asset": str(asset.id), "stored": _describe(stored), "given": _describe(record)},
            )
        return stored

    def get(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """The record of a stored asset; NotFound if it is not stored here."""
        with self._db.read() as session:
            row = session.execute(select(assets).where(assets.c.id == str(asset_id))).one_or_none()
        if row is None:
            raise NotFound(f"{asset_id} is not stored here", {"asset": str(asset_id)})
        return _record_from_row(row)

    def has(self, asset_id: AssetId | ResultId) -> bool:
        """Whether the asset is stored here."""
        with self._db.read() as session:
            found = session.execute(
                select(assets.c.id).where(assets.c.id == str(asset_id))
            ).one_or_none()
        return found is not None

    def delete(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """Remove an asset's record and return what it was; NotFound if not stored.

        The image stays in the blob store: delete it there once
        `image_users` says nothing else uses it.
        """
        with self._db.transaction() as session:
            row = session.execute(select(assets).where(assets.c.id == str(asset_id))).one_or_none()
            if row is None:
                raise NotFound(f"{asset_id} is not stored here", {"asset": str(asset_id)})
            session.execute(delete(assets).where(assets.c.id == str(asset_id)))
        return _record_from_row(row)

    def pin_image(self, asset_id: AssetId, digest: str) -> None:
        """Record that `asset_id`'s content is the image `digest`, for good.

        Raises Conflict if the id was ever given another image (even if the
        asset was deleted since): an asset id's content never changes.
        """
        with self._db.transaction() as session:
            inserted = insert_ignoring_duplicates(
                session,
                asset_images,
                {"asset_id": str(asset_id), "image_digest": digest, "stored_at": self._clock.now()},
            )
            if inserted:
                return
            pinned = session.execute(
                select(asset_images.c.image_digest).where(asset_images.c.asset_id == str(asset_id))
            ).scalar_one()
        if pinned != digest:
            raise Conflict(
                f"{asset_id} was stored with image sha256:{pinned} before; an asset id's content"
                " never changes (rules about it name those bytes): give new content a new id",
                {"asset": str(asset_id), "digest": f"sha256:{pinned}"},
            )

    def count(self) -> int:
        """How many assets are stored (without reading them)."""
        with self._db.read() as session:
            count = session.execute(select(func.count()).select_from(assets)).scalar_one()
        return int(count)

    def image_users(self, digest: str) -> int:
        """How many stored assets use the image with this digest."""
        with self._db.read() as session:
            count = session.execute(
                select(func.count()).select_from(assets).where(assets.c.image_digest == digest)
            ).scalar_one()
        return int(count)

    def list(self, kind: AssetKind | None = None) -> builtins.list[AssetRecord]:
        """All stored asset records (optionally of one kind), by id."""
        statement = select(assets).order_by(assets.c.id)
        if kind is not None:
            statement = statement.where(assets.c.kind == kind.value)
        with self._db.read() as session:
            rows = session.execute(statement).all()
        return [_record_from_row(row) for row in rows]


def _json_metadata(asset: Asset) -> dict[str, Any]:
    """The metadata as it will come back from the database (JSON round trip)."""
    try:
        loaded = json.loads(json.dumps(dict(asset.metadata), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            f"metadata of {asset.id} is not JSON: {error}", {"asset": str(asset.id)}
        ) from None
    if not isinstance(loaded, dict):
        raise InvalidInput(f"metadata of {asset.id} must be a mapping")
    return loaded


def _content(record: AssetRecord) -> tuple[Any, ...]:
    asset = record.asset
    return (asset.kind, dict(asset.metadata), asset.image_digest, record.size)


def _describe(record: AssetRecord) -> dict[str, Any]:
    asset = record.asset
    return {
        "kind": asset.kind.value,
        "metadata": dict(asset.metadata),
        "image_digest": asset.image_digest,
        "size": record.size,
    }


def _record_from_row(row: Row[Any]) -> AssetRecord:
    data = row._mapping
    asset_id = parse_identifier(data["id"], ("asset", "result"))
    assert isinstance(asset_id, AssetId | ResultId)  # guaranteed by `allowed`
    asset = Asset(asset_id, AssetKind(data["kind"]), data["metadata"], data["image_digest"])
    return AssetRecord(asset, data["size"], data["created_at"])
