"""A site ready for review tests: a review rule of its party, and a stored result to review;
and two sites ready for cross-site review tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mahiru.client.http import TlsIdentity
from mahiru.errors import NotFound
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import JobId, PartyId, ResultId
from mahiru.model.reviews import Review
from mahiru.pki.names import Role
from mahiru.services.jobs.review_exchange import ReviewExchange
from tests.support.images import add_file, image_bytes, tar_bytes
from tests.support.sites import Network, SiteServer, network
from tests.support.waiting import wait_until


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


#: The check outcome the cross-site review tests' reviews carry.
PASSED = {"check": "max_bytes", "passed": True, "detail": "5 bytes"}


def review_at(site: SiteServer, review_id: str) -> Review | None:
    """The review `review_id` as `site` keeps it; None if it is not there (yet)."""
    try:
        found: Review = site.services.oversight.reviews.get(review_id)
    except NotFound:
        return None
    return found


@dataclass
class CrossSiteReviews:
    """p1's site holding a reviewed result whose rule names p2 as reviewer, p2's site,
    and rita, a reviewer of p2's."""

    net: Network
    holder: SiteServer
    reviewer_site: SiteServer
    rita: TlsIdentity
    result: ResultId
    digest: str
    rule_id: str
    #: The review rule's dict form (with its signature).
    rule: dict[str, Any]

    def request(self) -> Review:
        """A new review at p1's site, for p2 to decide."""
        return self.holder.services.oversight.reviews.request(
            self.result,
            PartyId("p9.org", f"r{secrets.token_hex(4)}"),
            self.rule_id,
            self.reviewer_site.party.id,
            JobId(secrets.token_hex(16)),
            self.digest,
            (PASSED,),
        )

    def held(self, review_id: str) -> Review:
        """The review as the holder keeps it now."""
        return self.holder.services.oversight.reviews.get(review_id)

    def mirrored(self, review: Review) -> Review:
        """The review as p2's site keeps it, once offered there."""
        return wait_until(
            lambda: review_at(self.reviewer_site, review.review_id),
            60,
            "the review offered to p2's site",
        )

    def exchange(self) -> ReviewExchange:
        """The holder's review exchange."""
        return self.holder.site.jobs.loops.review_exchange


@contextmanager
def cross_site_reviews(root: Path, files: Mapping[str, bytes]) -> Iterator[CrossSiteReviews]:
    """A network in `root` on SQLite, set up as `CrossSiteReviews` says, the result's
    image holding `files`; p2's site has replicated p1's rule."""
    with network(root, lambda name: f"sqlite:///{root / name}.db") as net:
        net.replicate_all()
        holder, reviewer_site = net.sites["p1"], net.sites["p2"]
        made = reviewed_result(holder, files, reviewer_site.party.id)
        net.replicate_all()  # p2's site knows p1's rule, and every site the others
        rule = holder.services.policy.rule(made.rule_id)
        assert rule is not None
        yield CrossSiteReviews(
            net,
            holder,
            reviewer_site,
            net.certs.user(reviewer_site.party, "rita", Role.REVIEWER.value),
            made.result,
            made.digest,
            made.rule_id,
            rule.to_dict(),
        )
