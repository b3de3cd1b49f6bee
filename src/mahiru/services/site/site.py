"""One site's services wired together: assets, rules, policy view, replication, peers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.policy.decisions import Decision
from mahiru.services.background import BackgroundLoop
from mahiru.services.site.assets import AssetStore
from mahiru.services.site.peers import RegisteredSites
from mahiru.services.site.policy_view import PolicyView
from mahiru.services.site.replication import (
    RegistryFeed,
    Replicator,
    RuleFeedFactory,
    SourceStatus,
)
from mahiru.services.site.rules import RuleService
from mahiru.services.site.transfers import TransferLog
from mahiru.storage import AuditLog, BlobStore, ReplicaRepository, SiteRepositories


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
class SiteServices:
    """The services of one site, sharing one database and blob store."""

    site: SiteId
    owner: PartyId
    assets: AssetStore
    rules: RuleService
    policy: PolicyView
    replica: ReplicaRepository
    replicator: Replicator
    replication: BackgroundLoop
    registered_sites: RegisteredSites
    audit: AuditLog
    transfers: TransferLog

    @classmethod
    def create(
        cls,
        *,
        site: SiteId,
        owner: PartyId,
        repositories: SiteRepositories,
        blobs: BlobStore,
        registry: RegistryFeed,
        peers: RuleFeedFactory,
        replication_interval: float,
        max_image_bytes: int,
        clock: Clock = SYSTEM_CLOCK,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> SiteServices:
        """Build the services on a site's repositories and blob store."""
        replica = repositories.replica
        rules = RuleService(
            repositories.rules, replica, owner=owner, on_change=lambda: policy.invalidate()
        )
        policy = PolicyView(
            rules.in_force, clock=clock, audit=repositories.audit, on_decision=on_decision
        )
        replicator = Replicator(
            site, replica, registry, peers, on_change=policy.invalidate, clock=clock
        )
        policy.use_refresher(replicator.run_once)
        transfers = TransferLog(site, repositories.audit, clock)
        return cls(
            site=site,
            owner=owner,
            assets=AssetStore(
                repositories.database,
                repositories.assets,
                blobs,
                site=site,
                owner=owner,
                max_image_bytes=max_image_bytes,
                transfers=transfers,
            ),
            rules=rules,
            policy=policy,
            replica=replica,
            replicator=replicator,
            replication=BackgroundLoop(
                "mahiru-replication",
                replicator.round,
                replication_interval,
                logger=logging.getLogger("mahiru.site.replication"),
                context={"site": str(site)},
            ),
            registered_sites=RegisteredSites(replica),
            audit=repositories.audit,
            transfers=transfers,
        )

    def status(self) -> SiteStatus:
        """Replication versions and errors, rule and asset counts."""
        return SiteStatus(
            site=self.site,
            owner=self.owner,
            own_rules_version=self.rules.version(),
            rules_in_policy=self.policy.rule_count(),
            rejected_rules=self.replica.rejected_count(),
            assets=len(self.assets.list()),
            sources=self.replicator.status(),
        )
