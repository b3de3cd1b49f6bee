"""A site ready for review tests: a review rule of its party, and a stored result to review."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import ResultId
from tests.support.images import add_file, image_bytes, tar_bytes
from tests.support.sites import SiteServer


@dataclass(frozen=True)
class ReviewedResult:
    """A result stored at a site (its image's digest) and the id of the rule reviewing it."""

    result: ResultId
    digest: str
    rule_id: str


def reviewed_result(
    site: SiteServer, files: Mapping[str, bytes], reviewer: str | None = None
) -> ReviewedResult:
    """At `site`: a signed ReleaseReviewedBy rule of its party on its `data` asset, naming
    `reviewer` (default: the party itself), and a new stored result whose image holds
    `files` under /data. Replicating the rule to other sites is the caller's to do."""
    ns = site.party.namespace
    signed = site.party.sign(
        {
            "type": "ReleaseReviewedBy",
            "asset": f"asset:{ns}:data:{ns}:site",
            "reviewer": reviewer or site.party.id,
        }
    )
    with site.admin() as admin:
        admin.add_rule(signed)

    def members(archive: Any) -> None:
        for path, data in files.items():
            add_file(archive, f"data/{path}", data)

    result = ResultId(secrets.token_hex(32))
    stored = site.site.storage
    image = stored.blobs.write_bytes(image_bytes(tar_bytes(members)))
    stored.repositories.assets.add(Asset(result, AssetKind.DATA, {}, image.digest), size=image.size)
    return ReviewedResult(result, image.digest, signed.rule_id)
