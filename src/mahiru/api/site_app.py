"""The site app: one FastAPI app serving the internal API (`/internal`) and the external one
(`/external`), so two proxies can expose them separately.

`create_site_app` is the one place a site is wired together. Everything it
needs can be passed in (tests pass fakes or real pieces in a temp folder);
whatever is missing is built from the configuration, and closed again when
the app shuts down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import httpx
from fastapi import FastAPI

from mahiru.api.auth import CertificateAuthenticator
from mahiru.api.errors import error_responses, install_error_handlers
from mahiru.api.metrics import ReplicationState, SiteMetrics, SiteState
from mahiru.api.middleware import install_middleware
from mahiru.api.openapi import NETWORK_CERTIFICATE, USER_CERTIFICATE, describe_security, new_app
from mahiru.api.routes.site import mount_site_routes
from mahiru.api.routes.site.dashboard.pages import BASE as DASHBOARD
from mahiru.api.site_callers import authenticate_callers
from mahiru.api.site_models import ErrorOut
from mahiru.client.http import TlsIdentity
from mahiru.client.jobs import PeerJobsClient
from mahiru.client.registry import RegistryClient
from mahiru.client.site import PeerClient
from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.config import SiteConfig
from mahiru.errors import InvalidInput, path_redactor
from mahiru.model.registry import SiteRecord
from mahiru.pki import load_certificate, load_tls_private_key, user_ca_party
from mahiru.pki.signatures import sign_with_tls_key
from mahiru.runtime.docker_engine import DockerRuntime
from mahiru.runtime.limits import limits_from_config
from mahiru.runtime.protocol import ContainerRuntime
from mahiru.services.jobs import JobContext, JobPeer, JobPeers, JobServices
from mahiru.services.site import RegistryFeed, RuleFeed, RuleFeedFactory, SiteServices
from mahiru.storage import BlobStore, Database, SiteRepositories, create_database
from mahiru.storage.image_check import ImageCheck

logger = logging.getLogger("mahiru.site")


def site_identity(config: SiteConfig) -> TlsIdentity | None:
    """The TLS identity the site presents when it calls the registry and its peers."""
    if config.tls.cert is None or config.tls.key is None:
        return None
    return TlsIdentity(config.tls.cert, config.tls.key, config.tls.network_ca)


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


def _outgoing(identity: TlsIdentity | None) -> httpx.HTTPTransport:
    """A transport for calls to the registry and peers, presenting `identity`.

    Connections are not kept open between calls: each peer is called a few
    times per replication interval, and an idle pooled connection would hold
    up that peer's graceful shutdown until its timeout.
    """
    verify = identity.ssl_context() if identity is not None else True
    return httpx.HTTPTransport(verify=verify, limits=httpx.Limits(max_keepalive_connections=0))


def _timeout(config: SiteConfig) -> httpx.Timeout:
    seconds = config.request_timeout_seconds
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


class _PeerFeeds:
    """One feed per registered peer, made once and reused while its registration holds."""

    def __init__(self, factory: RuleFeedFactory) -> None:
        self._factory = factory
        self._feeds: dict[str, tuple[SiteRecord, RuleFeed]] = {}
        self._lock = threading.Lock()

    def __call__(self, site: SiteRecord) -> RuleFeed:
        with self._lock:
            known = self._feeds.get(str(site.id))
            if known is not None and known[0] == site:
                return known[1]
            if known is not None:
                _close(known[1])
            feed = self._factory(site)
            self._feeds[str(site.id)] = (site, feed)
            return feed

    def close(self) -> None:
        with self._lock:
            for _, feed in self._feeds.values():
                _close(feed)
            self._feeds.clear()


def _close(resource: object) -> None:
    close = getattr(resource, "close", None)
    if callable(close):
        close()


def create_site_app(
    config: SiteConfig,
    *,
    database: Database | None = None,
    blobs: BlobStore | None = None,
    authenticator: CertificateAuthenticator | None = None,
    registry_client: RegistryFeed | None = None,
    peer_client_factory: RuleFeedFactory | None = None,
    start_replication: bool = True,
    container_runtime: ContainerRuntime | None = None,
    start_jobs: bool = True,
) -> FastAPI:
    """The site app for `config`.

    Given pieces are used as they are and left open (a given blob store
    gets the ingress check of images added); missing ones are built
    from `config` (database at `database_url`, blobs under
    `data_dir/blobs`, clients with the site's TLS identity and the
    configured timeout) and closed at shutdown, as are the peer clients made
    by `peer_client_factory` (one per registered peer, reused). With
    `start_replication`, replication runs in the background while the app
    runs; `POST /internal/replication/run` runs a round on demand. With
    `start_jobs`, the job services (step execution and job following) run
    while the app runs, on `container_runtime` (by default the local Docker
    API engine).
    """
    to_close: list[Callable[[], None]] = []
    metrics = SiteMetrics()
    identity = site_identity(config)
    if identity is None:
        logger.warning(
            "no tls.cert/tls.key configured: calls to the registry and peers carry no certificate"
        )
    if database is None:
        database = create_database(config.database_url)
        to_close.append(database.close)
    # The ingress gate: every image stored here (uploads, peers' assets and results)
    # is checked as it streams in, and kept only if sound. A store passed in is
    # given the check too, never trusted to have one.
    if blobs is None:
        blobs = BlobStore(config.data_dir / "blobs")
    blobs = blobs.checking(metrics.counting(ImageCheck))
    if authenticator is None:
        authenticator = site_authenticator(config)
    if registry_client is None:
        client = RegistryClient(
            config.registry_url,
            identity,
            transport=_outgoing(identity),
            timeout=_timeout(config),
            retries=1,
        )
        to_close.append(client.close)
        registry_client = client
    if peer_client_factory is None:
        timeout = _timeout(config)

        def peer_client_factory(site: SiteRecord) -> RuleFeed:
            return PeerClient(
                site.endpoints.external or "",
                identity,
                transport=_outgoing(identity),
                timeout=timeout,
            )

    peers = _PeerFeeds(peer_client_factory)
    to_close.append(peers.close)
    clock = SYSTEM_CLOCK
    repositories = SiteRepositories.open(database, clock=clock)
    services = SiteServices.create(
        site=config.site,
        owner=config.owner_party,
        repositories=repositories,
        blobs=blobs,
        registry=registry_client,
        peers=peers,
        replication_interval=config.replication_interval_seconds,
        max_image_bytes=config.max_image_bytes,
        clock=clock,
        on_decision=metrics.decision,
    )

    timeout = _timeout(config)

    def job_peer(site: SiteRecord) -> JobPeer:
        return PeerJobsClient(
            site.endpoints.external or "", identity, transport=_outgoing(identity), timeout=timeout
        )

    jobs = JobServices(
        JobContext(
            site=config.site,
            database=database,
            blobs=blobs,
            assets=services.assets,
            policy=services.policy,
            replica=services.replica,
            peers=JobPeers(services.replica, job_peer),
            runtime=container_runtime or DockerRuntime(),
            limits=limits_from_config(config.containers),
            work_dir=config.data_dir / "work",
            jobs=repositories.jobs,
            provenance=repositories.provenance,
            records=repositories.assets,
            transfers=services.transfers,
            clock=clock,
            sign=_receipt_signer(config),
        ),
        peer_retry_deadline=config.peer_retry_deadline_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "site starting",
            extra={
                "site": config.site_id,
                "owner": config.owner,
                "database": database.url,
                "internal_url": config.internal_url,
                "external_url": config.external_url,
            },
        )
        if start_replication:
            services.replication.start()
        if start_jobs:
            jobs.start()
        try:
            yield
        finally:
            if start_jobs:
                jobs.stop()
            services.replication.stop()
            for close in reversed(to_close):
                close()
            logger.info("site stopped", extra={"site": config.site_id})

    app = new_app(
        f"Mahiru site {config.site_id}",
        "The internal API (/internal) serves the users of the site's owner party; the"
        " external API (/external) serves the other registered sites.",
        responses=_ERROR_RESPONSES,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.jobs = jobs
    metrics.watch(_site_state(config, repositories, services, jobs, clock))
    install_error_handlers(app, redact=path_redactor(config.data_dir.resolve(), config.data_dir))
    # The pending refusal summaries are written before the database closes.
    to_close.append(authenticate_callers(app, authenticator, services, config.callers))
    # Added after authentication, so they wrap it: refused requests are logged too.
    install_middleware(
        app,
        body_limit=config.max_body_bytes,
        unlimited=("/internal/assets/",),
        metrics=metrics,
        origins=[url for url in (config.internal_url, config.external_url) if url],
        forms=(f"{DASHBOARD}/",),
    )

    mount_site_routes(
        app,
        services=services,
        authenticator=authenticator,
        clock=clock,
        metrics=metrics,
        metrics_scrapers=config.metrics_scrapers,
    )
    describe_security(
        app,
        {**USER_CERTIFICATE, **NETWORK_CERTIFICATE},
        lambda path: "networkCertificate" if path.startswith("/external/") else "userCertificate",
    )
    return app


def _site_state(
    config: SiteConfig,
    repositories: SiteRepositories,
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
            for source in services.replicator.status()
        ]

    loops = (services.replication, jobs.worker.loop, jobs.coordinator.loop)
    return SiteState(
        repositories.database,
        config.site_id,
        replication,
        repositories.replica.rejected_count,
        lambda: {loop.name: loop.failures for loop in loops},
    )


def _receipt_signer(config: SiteConfig) -> Callable[[bytes], bytes] | None:
    """Signs receipts with the site's TLS key (None without one)."""
    if config.tls.key is None:
        return None
    return partial(sign_with_tls_key, load_tls_private_key(config.tls.key))


_ERROR_RESPONSES = error_responses(ErrorOut, "The site failed or a dependency is unavailable.")
