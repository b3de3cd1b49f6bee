"""One site's services together: assets, rules, policy view, replication, oversight."""

from __future__ import annotations

from dataclasses import dataclass

from mahiru.model.identifiers import PartyId, SiteId
from mahiru.services.background import BackgroundLoop
from mahiru.services.site.assets import AssetStore
from mahiru.services.site.peers import RegisteredSites
from mahiru.services.site.policy_view import PolicyView
from mahiru.services.site.replication import (
    Replicator,
    SourceStatus,
)
from mahiru.services.site.result_archives import ResultArchives
from mahiru.services.site.review_files import ReviewFiles
from mahiru.services.site.reviews import ReviewQueue
from mahiru.services.site.rules import RuleService
from mahiru.services.site.transfers import TransferLog
from mahiru.storage import AuditLog, ReplicaRepository


@dataclass(frozen=True, slots=True)
class SiteStatus:
    """A summary of the site's state, for operators."""

    site: SiteId
    owner: PartyId
    own_rules_version: int
    rules_in_policy: int
    rejected_rules: int
    assets: int
    sources: list[SourceStatus]


@dataclass(frozen=True, slots=True)
class Replication:
    """This site's copy of what the registry and its peers publish, and what keeps it
    current."""

    #: The copy: parties, sites, peers' rules and the rules rejected on arrival.
    replica: ReplicaRepository
    replicator: Replicator
    #: Runs the replicator's rounds in the background while the site runs.
    loop: BackgroundLoop
    #: The registered sites as the copy knows them, to tell a calling peer by.
    registered_sites: RegisteredSites


@dataclass(frozen=True, slots=True)
class SiteOversight:
    """What lets the data's owners see and steer what leaves the site: the tamper-evident
    records (every audit record, and the transfers of images in and out, written into the
    same audit log), the reviews that hold results back until a reviewer decides, and
    the files of results under review, read out for their reviewers, and the files of
    released results, packed for a person's download."""

    audit: AuditLog
    transfers: TransferLog
    reviews: ReviewQueue
    review_files: ReviewFiles
    archives: ResultArchives


@dataclass(frozen=True, slots=True)
class SiteServices:
    """The services of one site, sharing one database and blob store (built by the site's
    composition root, `mahiru.bootstrap`)."""

    site: SiteId
    assets: AssetStore
    rules: RuleService
    policy: PolicyView
    replication: Replication
    oversight: SiteOversight

    def status(self) -> SiteStatus:
        """Replication versions and errors, rule and asset counts."""
        return SiteStatus(
            site=self.site,
            owner=self.rules.owner,
            own_rules_version=self.rules.version(),
            rules_in_policy=self.policy.rule_count(),
            rejected_rules=self.replication.replica.rejected_count(),
            assets=self.assets.count(),
            sources=self.replication.replicator.status(),
        )
