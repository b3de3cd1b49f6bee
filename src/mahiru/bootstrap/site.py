"""The site's composition root: every part of one site built once and wired together.

`build_site` makes the whole object graph from the configuration; each part
can be replaced through `SiteOverrides` (tests pass fakes, or real pieces in
a temp folder). Both gates are attached whatever is passed in: every image
stored goes through the ingress check (`storage.image_check`), and every
image, step status and live file that leaves goes through the egress gate
(`services.jobs.egress`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from mahiru.api.auth import CertificateAuthenticator
from mahiru.api.metrics import ReplicationState, SiteMetrics, SiteState
from mahiru.bootstrap import outgoing
from mahiru.bootstrap.jobs import build_jobs
from mahiru.bootstrap.loop_wakes import forward_wakes, site_loops, wake_address
from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.config import SiteConfig
from mahiru.errors import InvalidInput
from mahiru.pki import load_certificate, load_tls_private_key, user_ca_party
from mahiru.pki.signatures import sign_with_tls_key
from mahiru.runtime.protocol import ContainerRuntime
from mahiru.services.background import BackgroundLoop
from mahiru.services.jobs import JobPeerFactory, JobServices
from mahiru.services.jobs.step_changes import WEB_WORKER_RECHECK
from mahiru.services.site import (
    AssetStore,
    PolicyReviewers,
    PolicyView,
    RegisteredSites,
    RegistryFeed,
    Replication,
    Replicator,
    ReviewQueue,
    RuleFeedFactory,
    RuleService,
    SiteOversight,
    SiteServices,
)
from mahiru.services.site.policy_catch_up import PAGE, SharedRuleWrites
from mahiru.services.site.result_archives import ResultArchives
from mahiru.services.site.review_files import ReviewFiles
from mahiru.services.site.reviews import ApprovalSigner
from mahiru.services.site.transfers import TransferLog
from mahiru.storage import BlobStore, Database, SiteRepositories, create_database
from mahiru.storage.image_check import ImageCheck
from mahiru.storage.write_counts import WriteCounts, WriteKind

logger = logging.getLogger("mahiru.site")


@dataclass(frozen=True, slots=True)
class OutgoingOverrides:
    """What the site calls the registry and its peers through, instead of the TLS clients
    `bootstrap.outgoing` makes (tests pass in-process feeds and peers)."""

    #: The registry's changes (by default a client of `registry_url`).
    registry_feed: RegistryFeed | None = None
    #: Makes a peer's rule feed (one per registered peer, reused; closed at the end).
    rule_feed_factory: RuleFeedFactory | None = None
    #: Makes the client a peer is called through about jobs (closed at the end).
    job_peer_factory: JobPeerFactory | None = None


@dataclass(frozen=True, slots=True)
class SiteOverrides:
    """Parts of a site to use instead of those built from its configuration.

    Given parts are used as they are and left open, except that a given blob
    store gets the ingress check of images added; every other part is built
    from the configuration and closed by `Site.close`.
    """

    database: Database | None = None
    blobs: BlobStore | None = None
    authenticator: CertificateAuthenticator | None = None
    #: The registry feed and the peers' rule feeds and job clients.
    outgoing: OutgoingOverrides = OutgoingOverrides()
    #: The container engine steps run on (by default the local Docker API engine).
    container_runtime: ContainerRuntime | None = None
    clock: Clock = SYSTEM_CLOCK


@dataclass(frozen=True, slots=True)
class SiteProcess:
    """Which part of a site this process is: by default the whole of it, in one process.

    A site can also run as several web workers beside one loops process (docs/
    architecture.md, Processes). Each of them is built with the same `write_counts`
    (a `SharedWriteCounts` on one file), so that what one writes, the others see; a
    web worker (`web`) sends its loops' wake-ups to the loops process, and starts none.
    """

    web: bool = False
    write_counts: WriteCounts | None = None
    #: Where every process of the site keeps its metrics' counts (None: in memory).
    metrics_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class SiteStorage:
    """Where a site keeps its state: the database, its repositories, and the blob store
    (with the ingress check attached)."""

    database: Database
    repositories: SiteRepositories
    blobs: BlobStore


@dataclass(frozen=True, slots=True)
class SiteEdge:
    """What the site's app puts between its callers and the services: the authenticator
    that checks every caller's certificate, and the metrics it serves (requests counted
    by the app; decisions, image checks and the site's state reported by the parts)."""

    authenticator: CertificateAuthenticator
    metrics: SiteMetrics


@dataclass(frozen=True, slots=True)
class Site:
    """One site's whole object graph, as `build_site` wired it."""

    config: SiteConfig
    storage: SiteStorage
    services: SiteServices
    #: The job services, holding the ports they were built from (`jobs.ports`).
    jobs: JobServices
    edge: SiteEdge
    #: What `build_site` opened, closed by `close` in reverse order.
    closing: tuple[Callable[[], None], ...]

    @property
    def clock(self) -> Clock:
        """The clock the site runs on."""
        return self.jobs.ports.ledger.clock

    def close(self) -> None:
        """Close what `build_site` opened (not the parts passed in), newest first."""
        for close in reversed(self.closing):
            close()


def build_site(
    config: SiteConfig,
    *,
    overrides: SiteOverrides = SiteOverrides(),
    process: SiteProcess = SiteProcess(),
) -> Site:
    """The site of `config` (or the part of it `process` says): storage, services and job
    services, wired together.

    Nothing is started: the app starts and stops the background loops
    (`Replication.loop` of the services, `JobServices`) and calls `Site.close`.
    """
    closing: list[Callable[[], None]] = []
    try:
        site = _build(config, overrides, process, closing)
        if process.web:
            loops = {loop.name: loop for loop in site_loops(site.services, site.jobs)}
            sender = forward_wakes(loops, wake_address(config.data_dir))
            # Steps change in the loops process, which cannot wake this one's waits.
            site.jobs.ports.ledger.changes.recheck_every(WEB_WORKER_RECHECK)
            return replace(site, closing=(*site.closing, sender.close))
        return site
    except BaseException:
        for close in reversed(closing):
            close()
        raise


def _build(
    config: SiteConfig,
    overrides: SiteOverrides,
    process: SiteProcess,
    closing: list[Callable[[], None]],
) -> Site:
    metrics = SiteMetrics(process.metrics_dir)
    counts = process.write_counts or WriteCounts()
    identity = outgoing.site_identity(config)
    if identity is None:
        logger.warning(
            "no tls.cert/tls.key configured: calls to the registry and peers carry no certificate"
        )
    authenticator = overrides.authenticator or site_authenticator(config)
    database = overrides.database
    if database is None:
        database = create_database(config.database_url)
        closing.append(database.close)
    # The ingress gate: every image stored here (uploads, peers' assets and results)
    # is checked as it streams in, and kept only if sound. A store passed in is
    # given the check too, never trusted to have one.
    blobs = overrides.blobs or BlobStore(config.data_dir / "blobs")
    blobs = blobs.checking(metrics.counting(ImageCheck))
    outgoing_parts = overrides.outgoing
    registry = outgoing_parts.registry_feed
    if registry is None:
        client = outgoing.registry_client(config, identity)
        closing.append(client.close)
        registry = client
    peer_feeds = outgoing.PeerFeeds(
        outgoing_parts.rule_feed_factory or outgoing.rule_feed_factory(config, identity)
    )
    closing.append(peer_feeds.close)
    clock = overrides.clock
    repositories = SiteRepositories.open(database, clock=clock, counts=counts)
    storage = SiteStorage(database, repositories, blobs)
    sign = receipt_signer(config)
    services = _services(config, storage, (registry, peer_feeds), clock, metrics, sign, counts)
    jobs = build_jobs(
        config,
        storage,
        services,
        overrides.container_runtime,
        outgoing_parts.job_peer_factory or outgoing.job_peer_factory(config, identity),
        sign,
        clock,
    )
    closing.append(jobs.ports.peers.close)
    metrics.watch(_site_state(config, storage, services, jobs, clock))
    return Site(config, storage, services, jobs, SiteEdge(authenticator, metrics), tuple(closing))


def _services(
    config: SiteConfig,
    storage: SiteStorage,
    feeds: tuple[RegistryFeed, RuleFeedFactory],
    clock: Clock,
    metrics: SiteMetrics,
    sign: Callable[[bytes], bytes] | None,
    counts: WriteCounts,
) -> SiteServices:
    """Assets, rules, the policy view, replication and oversight, on the site's storage."""
    site, owner, repositories = config.site, config.owner_party, storage.repositories
    registry, peers = feeds
    replica = repositories.replica
    rules = RuleService(
        repositories.rules,
        replica,
        owner=owner,
        on_change=lambda added, revoked: policy.rules_changed(added, revoked),
    )
    policy = PolicyView(
        rules.in_force,
        revocations=rules.revocations,
        clock=clock,
        audit=repositories.audit,
        on_decision=metrics.decision,
        # With several processes, the view follows rules written in any of them.
        shared=_shared_writes(counts, rules) if counts.shared else None,
    )
    # Each page of peers' rules is applied to the policy as it is stored; only a
    # source forgotten (left the network, or reset) makes the policy reload.
    replicator = Replicator(
        site,
        replica,
        registry,
        peers,
        on_change=policy.invalidate,
        on_rules=policy.rules_changed,
        clock=clock,
    )
    # A denial about to stand is worth a try of every source, backing off or not.
    policy.use_refresher(partial(replicator.run_once, eager=True))
    # Who may decide a review is the policy's to say (audited, like every act), and
    # which reviews a party's reviewers see too: those naming it or a category it is in.
    reviewers = PolicyReviewers(policy)
    reviews = ReviewQueue(
        repositories.results.reviews,
        reviewers,
        clock=clock,
        reviewer_names=reviewers.names_of,
        # Each approval is signed with the site's key, so results carry who approved them.
        signer=None if sign is None else ApprovalSigner(site, partial(_rule_dict, policy), sign),
    )
    oversight = SiteOversight(
        repositories.audit,
        TransferLog(site, repositories.audit, clock),
        reviews,
        ReviewFiles(config.data_dir / "review-files"),
        ResultArchives(config.data_dir / "result-archives"),
    )
    return SiteServices(
        site=site,
        assets=AssetStore(
            storage.database,
            repositories.assets,
            storage.blobs,
            site=site,
            owner=owner,
            max_image_bytes=config.max_image_bytes,
            transfers=oversight.transfers,
        ),
        rules=rules,
        policy=policy,
        replication=Replication(
            replica=replica,
            replicator=replicator,
            loop=BackgroundLoop(
                "mahiru-replication",
                replicator.round,
                config.replication_interval_seconds,
                logger=logging.getLogger("mahiru.site.replication"),
                context={"site": str(site)},
            ),
            registered_sites=RegisteredSites(replica),
        ),
        oversight=oversight,
    )


def _shared_writes(counts: WriteCounts, rules: RuleService) -> SharedRuleWrites:
    return SharedRuleWrites(
        lambda: (counts.count(WriteKind.OWN_RULES), counts.count(WriteKind.PEER_RULES)),
        rules.version,
        partial(rules.changes_since, limit=PAGE),
    )


def site_authenticator(config: SiteConfig) -> CertificateAuthenticator:
    """Checks callers against the network CA (sites) and the owner's user CA (users)."""
    user_ca = load_certificate(config.user_ca)
    party = user_ca_party(user_ca)
    if party != config.owner:
        raise InvalidInput(
            f"{config.user_ca} is the user CA of {party}, but this site is owned by {config.owner}"
        )
    return CertificateAuthenticator(
        load_certificate(config.tls.network_ca),
        user_ca=user_ca,
        trusted_proxies=config.tls.trusted_proxies,
    )


def _rule_dict(policy: PolicyView, rule_id: str) -> dict[str, Any] | None:
    rule = policy.rule(rule_id)
    return None if rule is None else rule.to_dict()


def receipt_signer(config: SiteConfig) -> Callable[[bytes], bytes] | None:
    """Signs receipts with the site's TLS key (None without one)."""
    if config.tls.key is None:
        return None
    return partial(sign_with_tls_key, load_tls_private_key(config.tls.key))


def _site_state(
    config: SiteConfig,
    storage: SiteStorage,
    services: SiteServices,
    jobs: JobServices,
    clock: Clock,
) -> SiteState:
    """Where the metrics read the site's state from when scraped."""

    def replication() -> list[ReplicationState]:
        now = clock.now()
        return [
            (
                source.source,
                source.version,
                None
                if source.last_success is None
                else (now - source.last_success).total_seconds(),
                source.failures,
            )
            for source in services.replication.replicator.status()
        ]

    loops = site_loops(services, jobs)
    return SiteState(
        storage.database,
        config.site_id,
        replication,
        storage.repositories.replica.rejected_count,
        lambda: {loop.name: loop.failures for loop in loops},
    )


__all__ = [
    "OutgoingOverrides",
    "Site",
    "SiteEdge",
    "SiteOverrides",
    "SiteProcess",
    "SiteStorage",
    "build_site",
]
