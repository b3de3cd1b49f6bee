"""The registry's and a site's apps in process, for tests that call every operation.

Requests reach them through an in-process client whose address ("testclient")
is configured as the trusted proxy, so a certificate header gets them past
authentication: a network certificate for the registry, an admin's
certificate for the internal API, a registered peer's for the external one.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI

from mahiru import pki
from mahiru.api.registry_app import create_registry_app
from mahiru.api.site_app import create_site_app
from mahiru.bootstrap import (
    OutgoingOverrides,
    RegistryOverrides,
    SiteOverrides,
    build_registry,
    build_site,
)
from mahiru.config import CallerLimits, RegistryConfig, SiteConfig, TlsConfig
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.registrations import Registration
from mahiru.model.registry import PartyRecord, SiteEndpoints, SiteRecord
from mahiru.policy.changes import PeerRuleBatch
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_rule
from mahiru.services.registry import RegistryService
from mahiru.storage import RegistryRepository
from mahiru.storage.db import create_database
from tests.support.images import data_layer, image_bytes
from tests.support.sites import DatabaseUrls

#: The address the in-process clients give as the client's.
TEST_CLIENT = "testclient"

#: Every request comes from one address and a few certificates: the rate limits of
#: refused and external requests (tests/integration/test_bounded_callers.py) stay out of it.
UNLIMITED = CallerLimits(refused_burst=1_000_000, external_burst=1_000_000)


class _RegistryFeed:
    """The site's registry feed, straight from the registry service (no HTTP)."""

    def __init__(self, service: RegistryService) -> None:
        self.service = service

    def changes_since(self, version: int, limit: int | None = None) -> Any:
        return self.service.changes_since(version, limit=limit or 1000)


class _SilentPeer:
    """A peer that has published no rules."""

    def rule_changes(self, since: int, limit: int | None = None) -> PeerRuleBatch:
        return PeerRuleBatch([], since)


@dataclass
class Apps:
    """The two apps, trusting the test client as their proxy, and the certificates to send."""

    registry: FastAPI
    site: FastAPI
    network_cert: str
    admin_cert: str
    peer_cert: str
    known: dict[str, str]


def _pem(path: Path) -> str:
    return quote(path.read_text())


def in_process_apps(root: Path, urls: DatabaseUrls) -> Iterator[Apps]:
    """A registry with parties p1 and p2 and their sites, and p1's site, replicated once;
    closed when the iterator ends."""
    ca = pki.create_network_ca()
    pki.save_certified_key(root / "ca.crt", root / "ca.key", ca)
    records: dict[str, tuple[PartyRecord, SiteRecord, Any]] = {}
    for name in ("p1", "p2"):
        party_id = f"party:{name}.org:{name}"
        site_id = f"site:{name}.org:site"
        credentials = pki.create_party_credentials(party_id)
        pki.save_certified_key(
            root / f"{name}-user-ca.crt", root / f"{name}-user-ca.key", credentials.user_ca
        )
        pki.save_certified_key(
            root / f"{name}-site.crt",
            root / f"{name}-site.key",
            pki.issue_site_certificate(ca, site_id),
        )
        pki.save_certified_key(
            root / f"{name}-client.crt",
            root / f"{name}-client.key",
            pki.issue_party_client_certificate(ca, party_id),
        )
        pki.save_certified_key(
            root / f"{name}-admin.crt",
            root / f"{name}-admin.key",
            pki.issue_user_certificate(credentials.user_ca, "admin", "admin"),
        )
        party = PartyRecord(
            PartyId.parse(party_id),
            f"{name}.org",
            pki.public_key_pem(credentials.main_key),
            (root / f"{name}-user-ca.crt").read_text(),
        )
        site = SiteRecord(
            SiteId.parse(site_id),
            party.id,
            party.id,
            SiteEndpoints(f"https://{name}.invalid/internal", f"https://{name}.invalid/external"),
            (root / f"{name}-site.crt").read_text(),
            has_store=True,
            has_runner=True,
        )
        records[name] = (party, site, credentials.main_key)

    tls = TlsConfig(network_ca=root / "ca.crt", trusted_proxies=[TEST_CLIENT])
    registry_db = create_database(urls("registry"))
    service = RegistryService(
        registry_db, RegistryRepository(registry_db), network_ca=ca.certificate
    )
    now = datetime.datetime.now(datetime.UTC)
    for name, (party, site, key) in records.items():
        caller = pki.peer_identity(pki.load_certificate(root / f"{name}-client.crt"))
        document = Registration.put_party(party, base_version=service.version(), issued_at=now)
        service.apply(caller, document.sign(key))
        document = Registration.put_site(site, base_version=service.version(), issued_at=now)
        service.apply(caller, document.sign(key))
    registry = create_registry_app(
        build_registry(
            RegistryConfig(tls=tls, database_url=registry_db.url, callers=UNLIMITED),
            overrides=RegistryOverrides(database=registry_db),
        )
    )
    site_db = create_database(urls("site"))
    site_graph = build_site(
        SiteConfig(
            site_id="site:p1.org:site",
            owner="party:p1.org:p1",
            tls=tls,
            user_ca=root / "p1-user-ca.crt",
            registry_url="https://registry.invalid",
            database_url=site_db.url,
            data_dir=root / "site-data",
            callers=UNLIMITED,
        ),
        overrides=SiteOverrides(
            database=site_db,
            outgoing=OutgoingOverrides(
                registry_feed=_RegistryFeed(service),
                rule_feed_factory=lambda record: _SilentPeer(),
            ),
        ),
    )
    site = create_site_app(site_graph, start_replication=False)
    services = site.state.services
    services.replication.replicator.run_once()
    asset_id = AssetId.parse("asset:p1.org:data1:p1.org:site")
    services.assets.add(Asset(asset_id, AssetKind.DATA, {"purpose": "fuzzing"}))
    image = image_bytes(data_layer(b"some data" * 1000))

    async def chunks() -> AsyncIterator[bytes]:
        yield image

    digest = f"sha256:{hashlib.sha256(image).hexdigest()}"
    asyncio.run(services.assets.upload_image(asset_id, chunks(), digest, sender="party:p1.org:p1"))
    rule = rule_from_dict({"type": "MayAccess", "site": "site:p2.org:site", "asset": str(asset_id)})
    services.rules.add(sign_rule(rule, records["p1"][2]))
    yield Apps(
        registry,
        site,
        _pem(root / "p1-client.crt"),
        _pem(root / "p1-admin.crt"),
        _pem(root / "p2-site.crt"),
        {"asset_id": str(asset_id), "party_id": "party:p1.org:p1", "site_id": "site:p1.org:site"},
    )
    for database in (site_db, registry_db):
        database.close()
