"""Shared pieces of the site integration tests (this module holds no tests).

A `Network` is a PKI in a temporary folder, a real registry and real sites
serving mutual TLS on loopback, each with its own database (SQLite files, or
PostgreSQL schemas) and data folder. Servers can be stopped and started again
on the same port, database and data folder, to test restarts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import Engine, text

from mahiru import pki
from mahiru.api.registry_app import create_registry_app
from mahiru.api.site_app import create_site_app
from mahiru.bootstrap import Site, SiteOverrides, build_registry, build_site
from mahiru.client.http import CLIENT_HEADER, TlsIdentity
from mahiru.client.registry import RegistryClient
from mahiru.client.site import PeerClient, SiteClient
from mahiru.config import CallerLimits, ListenConfig, RegistryConfig, SiteConfig, TlsConfig
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.registry import PartyRecord, SiteEndpoints, SiteRecord
from mahiru.model.workflow import Job, StepOutputRef, Workflow, WorkflowStep
from mahiru.policy.rules import Rule, rule_from_dict
from mahiru.policy.signing import SignedRule, sign_rule
from mahiru.runtime import ContainerInfo
from mahiru.runtime.steps import LABEL_INSTANCE
from mahiru.services.site import SiteServices
from mahiru.storage import BlobStore
from tests.support.db import sqlite_urls
from tests.support.servers import free_port, serving

DatabaseUrls = Callable[[str], str]
DATABASE_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def database_urls(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseUrls]:
    """Gives a fresh database URL per name, on the backend of `request.param`; drops them after.
    SQLite databases are copies of a template migrated once (tests/support/db.py); PostgreSQL
    schemas start empty (copying a database there costs more than migrating a schema)."""
    if request.param == "sqlite":
        yield sqlite_urls(tmp_path_factory.mktemp("databases"))
        return
    admin: Engine = request.getfixturevalue("postgres_admin_engine")
    urls: dict[str, str] = {}
    schemas: list[str] = []

    def url(name: str) -> str:
        if name not in urls:
            schema = f"mahiru_test_{uuid.uuid4().hex[:16]}"
            with admin.connect() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            schemas.append(schema)
            options = admin.url.query.get("options")
            search_path = f"-csearch_path={schema}"
            if isinstance(options, str):
                search_path = f"{options} {search_path}"
            urls[name] = admin.url.update_query_dict({"options": search_path}).render_as_string(
                hide_password=False
            )
        return urls[name]

    try:
        yield url
    finally:
        with admin.connect() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


# --- keys and certificates ------------------------------------------------------


@dataclass(frozen=True)
class PartyKit:
    """A party's keys and certificates: main key, user CA, an admin, a user, a client cert."""

    id: str
    namespace: str
    main_key: Ed25519PrivateKey
    key_path: Path
    user_ca: Path
    admin: TlsIdentity
    user: TlsIdentity
    client: TlsIdentity

    def record(self) -> PartyRecord:
        """The party as registered."""
        return PartyRecord(
            PartyId.parse(self.id),
            self.namespace,
            pki.public_key_pem(self.main_key),
            self.user_ca.read_text(),
        )

    def sign(self, data: dict[str, str]) -> SignedRule:
        """A rule from its dict form, signed with this party's main key."""
        return sign_rule(rule_from_dict(data), self.main_key)


class Pki:
    """A network CA and the certificates of a test network, as files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._ca = pki.create_network_ca()
        self.ca = root / "ca.crt"
        pki.save_certified_key(self.ca, root / "ca.key", self._ca)

    def _save(self, name: str, certified: pki.CertifiedKey) -> tuple[Path, Path]:
        cert, key = self.root / f"{name}.crt", self.root / f"{name}.key"
        pki.save_certified_key(cert, key, certified)
        return cert, key

    def registry(self) -> tuple[Path, Path]:
        """The registry's certificate and key."""
        return self._save("registry", pki.issue_registry_certificate(self._ca))

    def identity(self, name: str, certified: pki.CertifiedKey) -> TlsIdentity:
        """Save a certificate and key; the identity presenting them."""
        cert, key = self._save(name, certified)
        return TlsIdentity(cert, key, self.ca)

    def site(self, site_id: str) -> TlsIdentity:
        """A site's certificate (network CA), for serving and for calling peers."""
        return self.identity(
            site_id.replace(":", "_"), pki.issue_site_certificate(self._ca, site_id)
        )

    def user(self, party: PartyKit, name: str, role: str = "user") -> TlsIdentity:
        """Another user `name` of `party`, certified by its user CA."""
        user_ca = pki.load_certified_key(party.user_ca, party.user_ca.with_suffix(".key"))
        certified = pki.issue_user_certificate(user_ca, name, role)
        return self.identity(f"{party.namespace}-{name}", certified)

    def party(self, name: str) -> PartyKit:
        """Party `party:<name>.org:<name>` with an admin `<name>-admin` and a user `<name>-user`."""
        namespace = f"{name}.org"
        party_id = f"party:{namespace}:{name}"
        credentials = pki.create_party_credentials(party_id)
        key_path = self.root / f"{name}.party.key"
        pki.save_private_key(key_path, credentials.main_key)
        user_ca, _ = self._save(f"{name}-user-ca", credentials.user_ca)
        return PartyKit(
            id=party_id,
            namespace=namespace,
            main_key=credentials.main_key,
            key_path=key_path,
            user_ca=user_ca,
            admin=self.identity(
                f"{name}-admin", pki.issue_user_certificate(credentials.user_ca, "admin", "admin")
            ),
            user=self.identity(
                f"{name}-user", pki.issue_user_certificate(credentials.user_ca, "user", "user")
            ),
            client=self.identity(
                f"{name}-client", pki.issue_party_client_certificate(self._ca, party_id)
            ),
        )


# --- servers --------------------------------------------------------------------

_taken_ports: set[int] = set()
#: The instance labels (`mahiru.instance`) of the step containers of the sites this
#: process started: the containers a test of this process may have left behind. Labels
#: such as a test session's are no guide: an image passes its labels on to every
#: container made from it, so a shared image would mark other processes' steps too.
SITE_INSTANCES: set[str] = set()


def image_labels(container: ContainerInfo) -> dict[str, str]:
    """The labels of the image `container` was made from ({} if either is gone)."""
    api = docker.from_env().api
    try:
        image = api.inspect_container(container.id)["Config"]["Image"]
        return dict(api.inspect_image(image)["Config"].get("Labels") or {})
    except docker.errors.NotFound:
        return {}


def made_by_this_process(
    container: ContainerInfo,
    session: tuple[str, str],
    labels_of_image: Callable[[ContainerInfo], Mapping[str, str]] = image_labels,
) -> bool:
    """Whether step `container` is this process's: given its test `session` label (key,
    value) when it was created, or a step of a site this process started.

    A container inherits the labels of its image (`labels_of_image`, asked only of a
    container that has the session label), so a session label its image has too picks
    out no one: another worker may have built the image.
    """
    key, value = session
    if container.labels.get(LABEL_INSTANCE) in SITE_INSTANCES:
        return True
    return container.labels.get(key) == value and labels_of_image(container).get(key) != value


def _port() -> int:
    """A free port not handed to another server of these tests (ports are picked before use)."""
    while True:
        port = free_port()
        if port not in _taken_ports:
            _taken_ports.add(port)
            return port


class RegistryServer:
    """The registry, on a fixed port and database across restarts."""

    def __init__(self, certs: Pki, database_url: str) -> None:
        self.port = _port()
        self.url = f"https://127.0.0.1:{self.port}"
        cert, key = certs.registry()
        self.config = RegistryConfig(
            tls=TlsConfig(cert=cert, key=key, network_ca=certs.ca),
            database_url=database_url,
            callers=CallerLimits(refused_burst=100_000),
        )
        self._certs = certs
        self._stack: ExitStack | None = None

    def start(self) -> None:
        """Serve a new registry app (on the same database)."""
        stack = ExitStack()
        stack.enter_context(
            serving(
                create_registry_app(build_registry(self.config)),
                certfile=self.config.tls.cert,
                keyfile=self.config.tls.key,
                client_ca_files=[self._certs.ca],
                port=self.port,
                limits=self.config.callers,
            )
        )
        self._stack = stack

    def stop(self) -> None:
        """Stop serving."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def client(self, identity: TlsIdentity) -> RegistryClient:
        """A registry client presenting `identity`."""
        return RegistryClient(self.url, identity, retries=0)


class SiteServer:
    """A site of `party`, on a fixed port, database and data folder across restarts."""

    def __init__(
        self,
        certs: Pki,
        party: PartyKit,
        name: str,
        *,
        database_url: str,
        data_dir: Path,
        registry_url: str,
        replication_interval: float = 3600.0,
    ) -> None:
        self.id = f"site:{party.namespace}:{name}"
        self.party = party
        self.identity = certs.site(self.id)
        self.port = _port()
        base = f"https://127.0.0.1:{self.port}"
        self.internal_url = f"{base}/internal"
        self.external_url = f"{base}/external"
        self.config = SiteConfig(
            site_id=self.id,
            owner=party.id,
            listen=ListenConfig(port=self.port),
            tls=TlsConfig(cert=self.identity.cert, key=self.identity.key, network_ca=certs.ca),
            user_ca=party.user_ca,
            registry_url=registry_url,
            internal_url=self.internal_url,
            external_url=self.external_url,
            database_url=database_url,
            data_dir=data_dir,
            replication_interval_seconds=replication_interval,
            request_timeout_seconds=10.0,
            # Tests walk every route as every caller: only the tests of rate limits
            # (tests/integration/test_bounded_callers.py) set theirs low.
            callers=CallerLimits(refused_burst=100_000, external_burst=100_000),
        )
        self._certs = certs
        self._stack: ExitStack | None = None
        self.app: FastAPI | None = None

    def start(
        self,
        *,
        replication: bool = False,
        extra_client_cas: tuple[Path, ...] = (),
        jobs: bool = True,
        blobs: BlobStore | None = None,
    ) -> None:
        """Serve a new app instance (same port, database and data folder; `blobs` injected).

        Without `jobs`, no step runs and no job is followed: jobs stored in a
        test keep the states it gives them.
        """
        self.app = create_site_app(
            build_site(self.config, overrides=SiteOverrides(blobs=blobs)),
            start_replication=replication,
            start_jobs=jobs,
        )
        SITE_INSTANCES.add(self.app.state.site.jobs.ports.environment.instance)
        stack = ExitStack()
        stack.enter_context(
            serving(
                self.app,
                certfile=self.identity.cert,
                keyfile=self.identity.key,
                client_ca_files=[self._certs.ca, self.party.user_ca, *extra_client_cas],
                port=self.port,
                limits=self.config.callers,
            )
        )
        self._stack = stack

    def stop(self) -> None:
        """Stop serving (the app closes its database and clients)."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    @property
    def site(self) -> Site:
        """The running app's object graph (for looking inside in tests)."""
        assert self.app is not None, "the site is not running"
        site: Site = self.app.state.site
        return site

    @property
    def services(self) -> SiteServices:
        """The running app's services (for looking inside in tests)."""
        assert self.app is not None, "the site is not running"
        services: SiteServices = self.app.state.services
        return services

    def record(self) -> SiteRecord:
        """The site as registered."""
        owner = PartyId.parse(self.party.id)
        return SiteRecord(
            SiteId.parse(self.id),
            owner,
            owner,
            SiteEndpoints(self.internal_url, self.external_url),
            self.identity.cert.read_text(),
            has_store=True,
            has_runner=True,
        )

    def admin(self) -> SiteClient:
        """The internal API as the owner party's admin."""
        return SiteClient(self.internal_url, self.party.admin, timeout=60)

    def client(self, identity: TlsIdentity) -> SiteClient:
        """The internal API as anyone."""
        return SiteClient(self.internal_url, identity, timeout=60)

    def peer(self, identity: TlsIdentity) -> PeerClient:
        """The external API as another site (or anyone)."""
        return PeerClient(self.external_url, identity, timeout=60)

    def replicate(self) -> dict[str, Any]:
        """Run a replication round through the internal API (as admin); the status afterwards."""
        with self.client(self.party.admin) as client:
            return client.replicate_now()


@dataclass
class Network:
    """A registry and one site per party, all registered."""

    certs: Pki
    registry: RegistryServer
    parties: dict[str, PartyKit]
    sites: dict[str, SiteServer]
    stack: ExitStack = field(default_factory=ExitStack)

    def register(self, party: PartyKit, *sites: SiteServer) -> None:
        """Register a party and its sites at the registry."""
        with self.registry.client(party.client) as registry:
            registry.register_party(party.record(), party.main_key)
            for site in sites:
                registry.register_site(site.record(), party.main_key)

    def replicate_all(self) -> None:
        """One replication round at every site (twice: new peers are seen the first time).

        The sites of a round replicate at once: each waits on the others' answers.
        """
        with ThreadPoolExecutor(len(self.sites)) as pool:
            for _ in range(2):
                list(pool.map(SiteServer.replicate, self.sites.values()))


@contextmanager
def network(
    root: Path, database_url: DatabaseUrls, names: tuple[str, ...] = ("p1", "p2", "p3")
) -> Iterator[Network]:
    """A running registry and one running site `site:<p>.org:site` per party name, registered."""
    certs = Pki(root / "pki")
    registry = RegistryServer(certs, database_url("registry"))
    parties = {name: certs.party(name) for name in names}
    sites = {
        name: SiteServer(
            certs,
            party,
            "site",
            database_url=database_url(f"site-{name}"),
            data_dir=root / f"data-{name}",
            registry_url=registry.url,
        )
        for name, party in parties.items()
    }
    net = Network(certs, registry, parties, sites)
    registry.start()
    try:
        for name, party in parties.items():
            net.register(party, sites[name])
        for site in sites.values():
            site.start()
        yield net
    finally:
        # Each stop waits for its server's loop to notice and its app to shut down: at once.
        with ThreadPoolExecutor(len(sites)) as pool:
            list(pool.map(SiteServer.stop, sites.values()))
        registry.stop()


def registered_elsewhere(
    net: Network, root: Path, database_url: DatabaseUrls, name: str = "p1"
) -> SiteServer:
    """The site of party `name` registered in `net` but not started here: its config is for
    a process the test serves it in (`mahiru serve site`, Gunicorn). Its data lives in
    `root / data-<name>` and it replicates the registry every 0.5 s."""
    party = net.certs.party(name)
    site = SiteServer(
        net.certs,
        party,
        "site",
        database_url=database_url(f"site-{name}"),
        data_dir=root / f"data-{name}",
        registry_url=net.registry.url,
        replication_interval=0.5,
    )
    net.register(party, site)
    return site


def waiting_job(site: SiteServer) -> str:
    """The id of a new job of the party's plain user, stored as submitted (no plan, no steps): it
    stays so on a site started without `jobs` until someone cancels it."""
    ledger = site.site.jobs.ports.ledger
    party = PartyId.parse(site.party.id)
    data = AssetId.parse(f"asset:{site.party.namespace}:data:{site.party.namespace}:site")
    workflow = Workflow(
        ["x"],
        {"y": StepOutputRef("s", "out")},
        [WorkflowStep("s", data, {"in": "x"}, {"out": None})],
    )
    job_id = uuid.uuid4().hex
    ledger.job_records.create_job(
        job_id,
        Job(party, workflow, {"x": data}),
        None,
        SiteId.parse(site.id),
        ledger.now(),
        submitted_by=f"user@{site.party.id}",  # the party's plain user (site.party.user)
    )
    return job_id


def may_access(site: str, asset: str) -> dict[str, str]:
    """The dict form of a MayAccess rule."""
    return {"type": "MayAccess", "site": site, "asset": asset}


def may_use(party: str, asset: str) -> dict[str, str]:
    """The dict form of a MayUse rule."""
    return {"type": "MayUse", "party": party, "asset": asset, "conditions": "for the tests"}


def rule_of(data: dict[str, str]) -> Rule:
    """A rule from its dict form."""
    return rule_from_dict(data)


def client_as(identity: TlsIdentity, base: str) -> httpx.Client:
    """A raw HTTPS client for `base` with `identity`'s certificate, marked as Mahiru's own
    clients mark their requests, so the cross-site check lets it reach the routes."""
    return httpx.Client(
        base_url=base, verify=identity.ssl_context(), timeout=30, headers={CLIENT_HEADER: "1"}
    )
