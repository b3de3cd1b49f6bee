"""How a site calls out: its TLS identity, and the clients of the registry and its peers."""

from __future__ import annotations

import threading

import httpx

from mahiru.client.http import TlsIdentity
from mahiru.client.jobs import PeerJobsClient
from mahiru.client.registry import RegistryClient
from mahiru.client.site import PeerClient
from mahiru.config import SiteConfig
from mahiru.model.registry import SiteRecord
from mahiru.services.jobs import JobPeer, JobPeerFactory
from mahiru.services.site import RuleFeed, RuleFeedFactory


def site_identity(config: SiteConfig) -> TlsIdentity | None:
    """The TLS identity the site presents when it calls the registry and its peers."""
    if config.tls.cert is None or config.tls.key is None:
        return None
    return TlsIdentity(config.tls.cert, config.tls.key, config.tls.network_ca)


def outgoing(identity: TlsIdentity | None) -> httpx.HTTPTransport:
    """A transport for calls to the registry and peers, presenting `identity`.

    Connections are not kept open between calls: each peer is called a few
    times per replication interval, and an idle pooled connection would hold
    up that peer's graceful shutdown until its timeout.
    """
    verify = identity.ssl_context() if identity is not None else True
    return httpx.HTTPTransport(verify=verify, limits=httpx.Limits(max_keepalive_connections=0))


def request_timeout(config: SiteConfig) -> httpx.Timeout:
    """The configured timeout of calls out, connecting within at most 10 s."""
    seconds = config.request_timeout_seconds
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def registry_client(config: SiteConfig, identity: TlsIdentity | None) -> RegistryClient:
    """The client of the registry at `registry_url` (close it when done)."""
    return RegistryClient(
        config.registry_url,
        identity,
        transport=outgoing(identity),
        timeout=request_timeout(config),
        retries=1,
    )


def rule_feed_factory(config: SiteConfig, identity: TlsIdentity | None) -> RuleFeedFactory:
    """Makes the client a peer's rules are replicated through."""
    timeout = request_timeout(config)

    def feed(site: SiteRecord) -> RuleFeed:
        return PeerClient(
            site.endpoints.external or "", identity, transport=outgoing(identity), timeout=timeout
        )

    return feed


def job_peer_factory(config: SiteConfig, identity: TlsIdentity | None) -> JobPeerFactory:
    """Makes the client a peer is called through about jobs."""
    timeout = request_timeout(config)

    def peer(site: SiteRecord) -> JobPeer:
        return PeerJobsClient(
            site.endpoints.external or "", identity, transport=outgoing(identity), timeout=timeout
        )

    return peer


class PeerFeeds:
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
                close(known[1])
            feed = self._factory(site)
            self._feeds[str(site.id)] = (site, feed)
            return feed

    def close(self) -> None:
        """Close every feed made."""
        with self._lock:
            for _, feed in self._feeds.values():
                close(feed)
            self._feeds.clear()


def close(resource: object) -> None:
    """Close `resource` if it can be closed."""
    closing = getattr(resource, "close", None)
    if callable(closing):
        closing()
