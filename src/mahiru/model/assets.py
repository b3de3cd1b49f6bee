"""Assets, sites and parties as described to the rest of the system.

See docs/reference.md, "Assets, workflows, jobs and results".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId


class AssetKind(Enum):
    """Data sets hold files under /data; compute assets are programs."""

    DATA = "data"
    COMPUTE = "compute"


@dataclass(frozen=True, slots=True)
class Asset:
    """An asset: identity, kind, free-form metadata and optionally an image digest.

    Metadata conventions: `size` (bytes, used by the planner), `outputs` (for a
    compute asset: output name -> output base asset id text), `live_access`
    (bool: serve this data set live instead of copying it).
    """

    id: AssetId | ResultId
    kind: AssetKind
    metadata: Mapping[str, Any] = field(default_factory=dict)
    image_digest: str | None = None

    def __hash__(self) -> int:
        return hash((self.id, self.kind, self.image_digest))

    @property
    def size(self) -> int | None:
        """The size in bytes from metadata, if known and sane."""
        size = self.metadata.get("size")
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            return size
        return None


@dataclass(frozen=True, slots=True, order=True)
class SiteDescription:
    """A site as the planner and the registry see it."""

    id: SiteId
    owner: PartyId
    admin: PartyId | None = None
    runner: bool = True
    store: bool = True
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.admin is None:
            object.__setattr__(self, "admin", self.owner)


@dataclass(frozen=True, slots=True, order=True)
class PartyDescription:
    """A party: identity and the namespace it owns."""

    id: PartyId
    namespace: str

    def __post_init__(self) -> None:
        if not self.namespace:
            raise InvalidInput(f"party {self.id} has an empty namespace")


def submitter_site(sites: list[SiteDescription], submitter: PartyId) -> SiteDescription:
    """The submitter's site: owned by the submitter, with a store, first by id."""
    own = sorted((s for s in sites if s.owner == submitter and s.store), key=lambda s: str(s.id))
    if not own:
        raise InvalidInput(f"submitter {submitter} owns no site with a store")
    return own[0]


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """An asset stored at this site, with its image size and when it was stored."""

    asset: Asset
    size: int | None
    created_at: datetime
