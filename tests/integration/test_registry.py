"""The registry over real mutual TLS, on SQLite and PostgreSQL: who may register what.

Errors cross HTTP by their type name, so a bad signature arrives as InvalidInput.

Each test gets a fresh database (the `db_url` fixture, both backends) and a
registry app served over TLS on loopback; clients use real certificates of a
test network CA.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.servers import serving

from mahiru import pki
from mahiru.api.auth import CLIENT_CERT_HEADER, CertificateAuthenticator
from mahiru.api.registry_app import create_registry_app
from mahiru.bootstrap import RegistryOverrides, build_registry
from mahiru.client.http import CLIENT_HEADER, TlsIdentity
from mahiru.client.registry import RegistryClient
from mahiru.clock import SystemClock
from mahiru.config import RegistryConfig, TlsConfig
from mahiru.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registrations import Registration, SignedRegistration
from mahiru.model.registry import ChangeAction, PartyRecord, SiteEndpoints, SiteRecord
from mahiru.services.registry import RegistryService
from mahiru.storage import RegistryRepository, create_database

pytestmark = pytest.mark.integration

NS1 = "p1.example.org"
NS2 = "p2.example.org"
PARTY1 = PartyId(NS1, "party1")
PARTY2 = PartyId(NS2, "party2")
IMPOSTOR = PartyId(NS1, "impostor")
SITE1 = SiteId(NS1, "site1")
SITE2 = SiteId(NS2, "site2")

ENDPOINTS = [
    ("GET", "/parties"),
    ("GET", f"/parties/{PARTY1}"),
    ("GET", "/sites"),
    ("GET", f"/sites/{SITE1}"),
    ("POST", "/registrations"),
    ("GET", "/changes?since=0"),
    ("GET", "/version"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/no/such/path"),
]


@dataclass(frozen=True)
class Party:
    """A party's secrets, as `mahiru certs party` would make them."""

    id: PartyId
    key: Ed25519PrivateKey
    user_ca: pki.CertifiedKey

    def record(self, key: Ed25519PrivateKey | None = None) -> PartyRecord:
        return PartyRecord(
            self.id,
            self.id.namespace,
            pki.public_key_pem(key or self.key),
            pki.certificate_pem(self.user_ca.certificate),
        )


@dataclass(frozen=True)
class World:
    """A test network: its CA, certificate files by name, parties and site certificates."""

    directory: Path
    ca: pki.CertifiedKey
    parties: dict[PartyId, Party]
    site_certs: dict[str, str]

    def path(self, name: str) -> Path:
        return self.directory / name

    def identity(self, name: str) -> TlsIdentity:
        return TlsIdentity(self.path(f"{name}.crt"), self.path(f"{name}.key"), self.path("ca.crt"))

    def site_record(self, site: SiteId = SITE1, **changes: Any) -> SiteRecord:
        owner = PARTY1 if site.namespace == NS1 else PARTY2
        record = SiteRecord(
            site,
            owner,
            owner,
            SiteEndpoints(f"https://{site.name}:8443/internal", f"https://{site.name}:9443"),
            self.site_certs[str(site)],
            has_store=True,
            has_runner=True,
        )
        return replace(record, **changes)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    out = tmp_path_factory.mktemp("registry-pki")
    ca = pki.create_network_ca()
    pki.save_certified_key(out / "ca.crt", out / "ca.key", ca)
    pki.save_certified_key(
        out / "registry.crt", out / "registry.key", pki.issue_registry_certificate(ca)
    )
    parties = {}
    for party_id in (PARTY1, PARTY2, IMPOSTOR):
        credentials = pki.create_party_credentials(str(party_id))
        parties[party_id] = Party(party_id, credentials.main_key, credentials.user_ca)
        client = pki.issue_party_client_certificate(ca, str(party_id))
        pki.save_certified_key(out / f"{party_id.name}.crt", out / f"{party_id.name}.key", client)
    site_certs = {}
    for site in (SITE1, SITE2, SiteId(NS1, "other")):
        certified = pki.issue_site_certificate(ca, str(site))
        pki.save_certified_key(out / f"{site.name}.crt", out / f"{site.name}.key", certified)
        site_certs[str(site)] = pki.certificate_pem(certified.certificate)
    foreign = pki.create_network_ca("Foreign CA")
    intruder = pki.issue_party_client_certificate(foreign, str(PARTY1))
    pki.save_certified_key(out / "intruder.crt", out / "intruder.key", intruder)
    foreign_site = pki.issue_site_certificate(foreign, str(SITE1))
    site_certs["foreign"] = pki.certificate_pem(foreign_site.certificate)
    return World(out, ca, parties, site_certs)


def registry_config(world: World, db_url: str, **tls: Any) -> RegistryConfig:
    settings = {"cert": world.path("registry.crt"), "key": world.path("registry.key")}
    settings.update(tls)
    return RegistryConfig(
        tls=TlsConfig(network_ca=world.path("ca.crt"), **settings),
        database_url=db_url,
        max_body_bytes=64_000,
    )


@contextmanager
def served(world: World, db_url: str) -> Iterator[str]:
    """A registry on a database of its own, over TLS; yields its URL."""
    database = create_database(db_url)
    try:
        app = create_registry_app(
            build_registry(
                registry_config(world, db_url), overrides=RegistryOverrides(database=database)
            )
        )
        with serving(
            app,
            certfile=world.path("registry.crt"),
            keyfile=world.path("registry.key"),
            client_ca_files=[world.path("ca.crt")],
        ) as url:
            yield url
    finally:
        database.close()


@dataclass(frozen=True)
class Registry:
    """A running registry and the network it belongs to."""

    url: str
    world: World

    def client(self, name: str = "party1") -> RegistryClient:
        """A client presenting the certificate `name` (party1, party2, site1, intruder, ...)."""
        return RegistryClient(self.url, self.world.identity(name), retries=0)

    def register(self, party_id: PartyId = PARTY1) -> int:
        """Register a party with its own client certificate and key."""
        party = self.world.parties[party_id]
        with self.client(party_id.name) as client:
            return client.register_party(party.record(), party.key)


@pytest.fixture
def registry(world: World, db_url: str) -> Iterator[Registry]:
    with served(world, db_url) as url:
        yield Registry(url, world)


def now() -> datetime:
    return datetime.now(UTC)


def sign(client: RegistryClient, make: Callable[..., Registration], subject: Any, key: Any) -> Any:
    """A document made against the registry's current version, signed with `key`."""
    return make(subject, base_version=client.version(), issued_at=now()).sign(key)


# --- parties -------------------------------------------------------------------


def test_party_registers_itself_and_every_member_sees_it(registry: Registry) -> None:
    """A party registers with its own certificate and key; any member can read it."""
    party = registry.world.parties[PARTY1]
    assert registry.register() == 1
    with registry.client("site2") as reader:
        assert reader.parties() == [party.record()]
        assert reader.party(PARTY1) == party.record()
        assert reader.party(str(PARTY1)) == party.record()
        assert reader.version() == 1
        with pytest.raises(NotFound, match="not registered"):
            reader.party(PARTY2)


def test_registering_the_same_record_again_changes_nothing(registry: Registry) -> None:
    """Re-registering an unchanged party is accepted and adds no version."""
    party = registry.world.parties[PARTY1]
    registry.register()
    with registry.client() as client:
        outcome = client.submit(sign(client, Registration.put_party, party.record(), party.key))
        assert (outcome.version, outcome.changed) == (1, False)


def test_a_party_cannot_be_registered_by_another_partys_certificate(registry: Registry) -> None:
    """Only the party's own client certificate may register it, even with its key; the
    refusal's details list no one who may."""
    party = registry.world.parties[PARTY1]
    for name in ("party2", "impostor", "site1"):
        with registry.client(name) as client, pytest.raises(PermissionDenied) as raised:
            client.register_party(party.record(), party.key)
        assert "only party:p1.example.org:party1 itself" in raised.value.message
        assert raised.value.details == {"caller": raised.value.details["caller"]}
    with registry.client() as client:
        assert client.parties() == []


def test_a_namespace_has_one_owner(registry: Registry) -> None:
    """A second party of the same namespace cannot register once the first has."""
    registry.register()
    with pytest.raises(Conflict, match=r"already owned by party:p1\.example\.org:party1"):
        registry.register(IMPOSTOR)


def test_a_party_cannot_claim_a_foreign_namespace(registry: Registry) -> None:
    """A party owns exactly the namespace in its id."""
    party = registry.world.parties[PARTY2]
    claim = replace(party.record(), namespace=NS1)
    with registry.client("party2") as client, pytest.raises(PermissionDenied, match="only own"):
        client.register_party(claim, party.key)
    registry.register()  # the rightful owner is unaffected


def test_a_first_registration_must_prove_possession_of_the_key(registry: Registry) -> None:
    """The first document must be signed by the key in the record itself."""
    party = registry.world.parties[PARTY1]
    stranger = pki.generate_party_key()
    with registry.client() as client, pytest.raises(InvalidInput, match="key in its record"):
        client.register_party(party.record(), stranger)


def test_updates_are_signed_with_the_registered_key(registry: Registry) -> None:
    """A key rotation is signed by the current key; afterwards only the new key counts."""
    party = registry.world.parties[PARTY1]
    registry.register()
    new_key = pki.generate_party_key()
    with registry.client() as client:
        with pytest.raises(InvalidInput, match="does not verify"):
            client.register_party(party.record(new_key), new_key)
        assert client.register_party(party.record(new_key), party.key) == 2
        assert client.party(PARTY1).public_key_pem == pki.public_key_pem(new_key)
        with pytest.raises(InvalidInput, match="does not verify"):
            client.register_party(party.record(), party.key)


def test_the_user_ca_must_be_the_partys_own(registry: Registry) -> None:
    """A party cannot register another party's user CA as its own."""
    party = registry.world.parties[PARTY1]
    foreign_ca = registry.world.parties[PARTY2].user_ca.certificate
    record = replace(party.record(), user_ca_pem=pki.certificate_pem(foreign_ca))
    with registry.client() as client, pytest.raises(InvalidInput, match="made for party:p2"):
        client.register_party(record, party.key)


def test_a_party_with_sites_is_removed_only_after_them(registry: Registry) -> None:
    """Removing a party that still owns a site is a Conflict; removing it later works."""
    party = registry.world.parties[PARTY1]
    registry.register()
    with registry.client() as client:
        client.register_site(registry.world.site_record(), party.key)
        with pytest.raises(Conflict, match="remove those sites first"):
            client.remove_party(PARTY1, party.key)
        client.remove_site(SITE1, party.key)
        with registry.client("party2") as other, pytest.raises(PermissionDenied):
            other.remove_party(PARTY1, party.key)
        client.remove_party(PARTY1, party.key)
        assert client.parties() == []
        with pytest.raises(NotFound):
            client.remove_party(PARTY1, party.key)


# --- sites ---------------------------------------------------------------------


def test_site_register_update_remove_with_exact_changes(registry: Registry) -> None:
    """Each change gets the next version, and changes_since returns exactly the later ones."""
    world = registry.world
    key = world.parties[PARTY1].key
    site = world.site_record()
    assert registry.register() == 1
    with registry.client() as client:
        assert client.register_site(site, key) == 2
        assert client.site(SITE1) == site
        assert client.sites() == [site]
        moved = replace(site, endpoints=SiteEndpoints(None, "https://moved:9443"), has_store=False)
        assert client.register_site(moved, key) == 3
        assert client.remove_site(SITE1, key) == 4
        with pytest.raises(NotFound):
            client.site(SITE1)

        later = client.changes_since(2)
        assert later.version == 4
        assert [(c.version, c.action, c.subject, c.record) for c in later.changes] == [
            (3, ChangeAction.UPDATED, SITE1, moved),
            (4, ChangeAction.REMOVED, SITE1, None),
        ]
        everything = client.changes_since(0)
        assert [c.version for c in everything.changes] == [1, 2, 3, 4]
        assert everything.changes[0].record == world.parties[PARTY1].record()
        assert client.changes_since(4) == ([], 4)
        first_page = client.changes_since(0, limit=3)
        assert ([c.version for c in first_page.changes], first_page.version) == ([1, 2, 3], 3)


def test_a_site_may_register_itself_but_not_another(registry: Registry) -> None:
    """The site's own certificate may carry its owner's signed registration; a peer's may not."""
    key = registry.world.parties[PARTY1].key
    registry.register()
    with registry.client("site1") as own:
        assert own.register_site(registry.world.site_record(), key) == 2
    with registry.client("other") as peer, pytest.raises(PermissionDenied, match="only its owner"):
        peer.remove_site(SITE1, key)
    with registry.client("party2") as stranger, pytest.raises(PermissionDenied):
        stranger.register_site(registry.world.site_record(has_runner=False), key)


def test_a_site_outside_the_owners_namespace_is_refused(registry: Registry) -> None:
    """No party can register a site in a namespace it does not own."""
    registry.register()
    registry.register(PARTY2)
    party2 = registry.world.parties[PARTY2]
    intrusion = registry.world.site_record(SiteId(NS1, "other"), owner=PARTY2, admin=PARTY2)
    with registry.client("party2") as client:
        with pytest.raises(PermissionDenied, match="only in its own namespace"):
            client.register_site(intrusion, party2.key)
        # Naming the namespace's owner instead needs that owner's key.
        with pytest.raises(PermissionDenied):
            client.register_site(replace(intrusion, owner=PARTY1), party2.key)
    with registry.client() as client, pytest.raises(InvalidInput, match="does not verify"):
        client.register_site(replace(intrusion, owner=PARTY1, admin=PARTY1), party2.key)


def test_a_site_needs_a_registered_owner_and_admin(registry: Registry) -> None:
    """Sites of unregistered parties, or administered by one, are NotFound."""
    key = registry.world.parties[PARTY1].key
    with registry.client() as client, pytest.raises(NotFound, match="register the party first"):
        client.register_site(registry.world.site_record(), key)
    registry.register()
    with registry.client() as client, pytest.raises(NotFound, match="not registered"):
        client.register_site(registry.world.site_record(admin=PARTY2), key)
    registry.register(PARTY2)
    with registry.client() as client:
        assert client.register_site(registry.world.site_record(admin=PARTY2), key) == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tls_cert_pem": "-----BEGIN CERTIFICATE-----\nnope\n"}, "not a valid X.509"),
        ({"tls_cert_pem": "site:p2.example.org:site2"}, "not a valid X.509"),
        ({"endpoints": SiteEndpoints("ftp://site1/", None)}, "http"),
        ({"endpoints": SiteEndpoints(None, "https://user:pw@site1/")}, "credentials"),
        ({"endpoints": SiteEndpoints(None, "site1:8443")}, "http"),
    ],
)
def test_site_records_must_be_usable(
    registry: Registry, changes: dict[str, Any], message: str
) -> None:
    """Malformed certificates and endpoint URLs are refused with the reason."""
    registry.register()
    record = registry.world.site_record(**changes)
    with registry.client() as client, pytest.raises(InvalidInput, match=message):
        client.register_site(record, registry.world.parties[PARTY1].key)


def test_a_site_certificate_must_be_the_sites_own_from_the_network_ca(registry: Registry) -> None:
    """Another site's certificate, or one from a foreign CA, cannot be registered."""
    world = registry.world
    registry.register()
    with registry.client() as client:
        with pytest.raises(InvalidInput, match=r"issued to site:p2\.example\.org:site2"):
            client.register_site(
                world.site_record(tls_cert_pem=world.site_certs[str(SITE2)]),
                world.parties[PARTY1].key,
            )
        with pytest.raises(InvalidInput, match="not issued by this network's CA"):
            client.register_site(
                world.site_record(tls_cert_pem=world.site_certs["foreign"]),
                world.parties[PARTY1].key,
            )


# --- signatures and replays ------------------------------------------------------


def test_bad_and_tampered_signatures_are_refused(registry: Registry) -> None:
    """A document signed by the wrong key, or changed after signing, changes nothing."""
    world = registry.world
    registry.register()
    with registry.client() as client:
        with pytest.raises(InvalidInput, match="does not verify"):
            client.register_site(world.site_record(), world.parties[PARTY2].key)
        document = sign(
            client, Registration.put_site, world.site_record(), world.parties[PARTY1].key
        )
        tampered = document.to_dict()
        tampered["record"]["endpoints"]["external"] = "https://evil.example.org"
        response = client._http.post("/registrations", json=tampered)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "InvalidInput"
        assert "does not verify" in response.json()["error"]["message"]
        assert client.sites() == []
        assert client.version() == 1


def test_a_replayed_document_is_refused(registry: Registry) -> None:
    """A document applies once; neither it nor an old removal can be replayed later."""
    world = registry.world
    key = world.parties[PARTY1].key
    registry.register()
    with registry.client() as client:
        registration = sign(client, Registration.put_site, world.site_record(), key)
        assert client.submit(registration).version == 2
        with pytest.raises(Conflict, match="made against registry version 1") as raised:
            client.submit(registration)
        assert raised.value.details["reason"] == "stale_base_version"

        removal = sign(client, Registration.remove_site, SITE1, key)
        assert client.submit(removal).version == 3
        client.register_site(world.site_record(), key)
        with pytest.raises(Conflict):
            client.submit(removal)
        assert client.site(SITE1) == world.site_record()


class _HourAheadClock(SystemClock):
    """The system clock, but an hour fast: what a client with a wrong clock signs at."""

    def now(self) -> datetime:
        return super().now() + timedelta(hours=1)


def test_an_expired_document_is_refused(registry: Registry) -> None:
    """A document signed long ago is refused even against the current version."""
    party = registry.world.parties[PARTY1]
    with registry.client() as client:
        old = Registration.put_party(
            party.record(), base_version=0, issued_at=now() - timedelta(hours=1)
        ).sign(party.key)
        with pytest.raises(InvalidInput, match="sign it again"):
            client.submit(old)
        late_client = RegistryClient(
            registry.url, registry.world.identity("party1"), retries=0, clock=_HourAheadClock()
        )
        with late_client, pytest.raises(InvalidInput, match="check the clocks"):
            late_client.register_party(party.record(), party.key)


def test_concurrent_registrations_all_apply(registry: Registry) -> None:
    """Clients racing each other re-sign against the newer version instead of failing."""
    world = registry.world
    key = world.parties[PARTY1].key
    registry.register()
    sites = [world.site_record(), world.site_record(SiteId(NS1, "other"))]
    errors: list[BaseException] = []

    def register(record: SiteRecord) -> None:
        try:
            with registry.client() as client:
                client.register_site(record, key)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=register, args=(site,)) for site in sites * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with registry.client() as client:
        assert client.sites() == sorted(sites, key=lambda s: str(s.id))


def test_documents_made_against_one_version_apply_at_most_once(db_url: str, world: World) -> None:
    """Of many documents signed against the same version, racing, exactly one applies."""
    database = create_database(db_url)
    try:
        service = RegistryService(
            database, RegistryRepository(database), network_ca=world.ca.certificate
        )
        party = world.parties[PARTY1]
        service.put_party(
            str(PARTY1),
            Registration.put_party(party.record(), base_version=0, issued_at=now()).sign(party.key),
        )
        documents = [
            Registration.put_site(
                world.site_record(has_store=bool(i % 2), has_runner=i < 4),
                base_version=1,
                issued_at=now(),
            ).sign(party.key)
            for i in range(8)
        ]
        outcomes: list[object] = []

        def apply(document: SignedRegistration) -> None:
            try:
                outcomes.append(service.apply(str(PARTY1), document))
            except Conflict as error:
                outcomes.append(error)

        threads = [threading.Thread(target=apply, args=(d,)) for d in documents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        applied = [o for o in outcomes if not isinstance(o, Conflict)]
        assert len(applied) == 1
        assert len(outcomes) == len(documents)
        assert service.version() == 2
    finally:
        database.close()


# --- persistence -----------------------------------------------------------------


def test_a_restarted_registry_loses_nothing(world: World, db_url: str) -> None:
    """A new registry app on the same database serves the same parties, sites and changes."""
    key = world.parties[PARTY1].key
    with served(world, db_url) as url:
        first = Registry(url, world)
        first.register()
        with first.client() as client:
            client.register_site(world.site_record(), key)
            before = (client.parties(), client.sites(), client.changes_since(0), client.version())
    with served(world, db_url) as url:
        with Registry(url, world).client("site2") as client:
            after = (client.parties(), client.sites(), client.changes_since(0), client.version())
            assert after == before
        with Registry(url, world).client() as client:
            assert client.remove_site(SITE1, key) == 3


def test_a_write_through_one_worker_is_in_the_next_answer_of_another(
    world: World, db_url: str
) -> None:
    """Two registry apps on one database (as Gunicorn's workers are): once a registration
    through one has completed, the other's version, changes, parties and sites (kept
    answers included) are those after it, on every try."""
    key = world.parties[PARTY1].key
    with served(world, db_url) as first_url, served(world, db_url) as second_url:
        first, second = Registry(first_url, world), Registry(second_url, world)
        with second.client("site2") as reader, first.client() as writer:
            for _ in range(2):  # the first answers are made and kept, the second are kept
                assert reader.version() == 0
                assert reader.changes_since(0).changes == []
                assert reader.parties() == [] and reader.sites() == []
            version = first.register()
            assert (reader.version(), reader.changes_since(0).version) == (version, version)
            assert [party.id for party in reader.parties()] == [PARTY1]
            version = writer.register_site(world.site_record(), key)
            assert reader.version() == version
            assert [site.id for site in reader.sites()] == [SITE1]
            assert [change.subject for change in reader.changes_since(0).changes] == [
                PARTY1,
                SITE1,
            ]


# --- authentication and the HTTP surface ------------------------------------------


def _raw_client(world: World, name: str | None) -> httpx.Client:
    """An httpx client trusting the network CA, presenting certificate `name` (or none)."""
    context = ssl.create_default_context(cafile=world.path("ca.crt"))
    if name is not None:
        context.load_cert_chain(world.path(f"{name}.crt"), world.path(f"{name}.key"))
    return httpx.Client(verify=context, timeout=10, headers={CLIENT_HEADER: "1"})


@pytest.mark.parametrize("name", [None, "intruder"], ids=["no certificate", "foreign CA"])
def test_every_endpoint_refuses_callers_without_a_network_certificate(
    registry: Registry, name: str | None
) -> None:
    """Without a certificate of the network CA, the TLS handshake fails on every path."""
    with _raw_client(registry.world, name) as client:
        for method, path in ENDPOINTS:
            with pytest.raises(httpx.TransportError):
                client.request(method, f"{registry.url}{path}", json={})
    with (
        RegistryClient(registry.url, registry.world.identity("intruder"), retries=0) as client,
        pytest.raises(Unavailable),
    ):
        client.parties()


def test_behind_a_proxy_every_endpoint_needs_a_forwarded_network_certificate(
    world: World, db_url: str
) -> None:
    """Plain HTTP from the trusted proxy: no or a foreign forwarded certificate is 401."""
    database = create_database(db_url)
    config = registry_config(world, db_url, cert=None, key=None, trusted_proxies=["127.0.0.1"])
    app = create_registry_app(
        build_registry(config, overrides=RegistryOverrides(database=database))
    )
    foreign = {CLIENT_CERT_HEADER: quote(world.path("intruder.crt").read_text())}
    good = {CLIENT_CERT_HEADER: quote(world.path("site1.crt").read_text())}
    try:
        with serving(app, certfile=None, keyfile=None, client_ca_files=[]) as url:
            for headers in ({}, foreign):
                for method, path in ENDPOINTS:
                    response = httpx.request(method, f"{url}{path}", headers=headers, json={})
                    assert response.status_code == 401, (method, path)
                    assert response.json()["error"]["type"] == "Unauthenticated"
                    assert set(response.json()["error"]) == {"type", "message", "details"}
            assert httpx.get(f"{url}/health", headers=good).json() == {"status": "ok", "version": 0}
    finally:
        database.close()


def test_the_authenticator_passed_in_is_the_one_used(world: World, db_url: str) -> None:
    """An app built with an injected authenticator trusts what that one trusts."""
    database = create_database(db_url)
    nobody = CertificateAuthenticator(pki.create_network_ca("Other").certificate)
    app = create_registry_app(
        build_registry(
            registry_config(world, db_url),
            overrides=RegistryOverrides(database=database, authenticator=nobody),
        )
    )
    try:
        with (
            serving(
                app,
                certfile=world.path("registry.crt"),
                keyfile=world.path("registry.key"),
                client_ca_files=[world.path("ca.crt")],
            ) as url,
            _raw_client(world, "party1") as client,
        ):
            response = client.get(f"{url}/parties")
            assert response.status_code == 401
            assert "not issued by the network CA" in response.json()["error"]["message"]
    finally:
        database.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error_type", "message"),
    [
        ("GET", "/parties/party:p1.example.org:nobody", None, 404, "NotFound", "not registered"),
        ("GET", "/sites/site:p1.example.org:nobody", None, 404, "NotFound", "not registered"),
        ("GET", "/parties/site:p1.example.org:site1", None, 400, "InvalidInput", "not a party"),
        ("GET", "/sites/nonsense", None, 400, "InvalidInput", "not a site"),
        ("GET", "/parties?verbose=1", None, 400, "InvalidInput", "unknown query parameter"),
        ("GET", "/changes", None, 400, "InvalidInput", "since"),
        ("GET", "/changes?since=-1", None, 400, "InvalidInput", "since"),
        ("GET", "/changes?since=0&limit=0", None, 400, "InvalidInput", "limit"),
        ("GET", "/changes?since=0&page=2", None, 400, "InvalidInput", "page"),
        ("DELETE", "/parties", None, 405, "InvalidInput", "Method Not Allowed"),
        ("GET", "/nothing/here", None, 404, "NotFound", "Not Found"),
        ("POST", "/registrations", b"{not json", 400, "InvalidInput", "JSON"),
        ("POST", "/registrations", {"action": "put_party"}, 400, "InvalidInput", "record"),
        ("POST", "/registrations", {"action": "fly"}, 400, "InvalidInput", "action"),
        ("POST", "/registrations", b"x" * 70_000, 413, "InvalidInput", "larger than"),
    ],
)
def test_errors_come_in_the_json_error_shape(
    registry: Registry,
    method: str,
    path: str,
    body: Any,
    status: int,
    error_type: str,
    message: str,
) -> None:
    """Every refusal is `{"error": {"type", "message", "details"}}` with a fitting status."""
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    if isinstance(body, bytes):
        kwargs["headers"] = {"content-type": "application/json"}
    with _raw_client(registry.world, "party1") as client:
        response = client.request(method, f"{registry.url}{path}", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message", "details"}
    assert error["type"] == error_type
    assert message in error["message"]


def test_unknown_fields_in_a_document_are_refused(registry: Registry) -> None:
    """An otherwise valid, signed document with an extra field is 400 and changes nothing."""
    party = registry.world.parties[PARTY1]
    with registry.client() as client:
        document = sign(client, Registration.put_party, party.record(), party.key).to_dict()
        for extra in ({"comment": "hi"}, {"record": {**document["record"], "admin": "x"}}):
            response = client._http.post("/registrations", json={**document, **extra})
            assert response.status_code == 400
            assert response.json()["error"]["type"] == "InvalidInput"
        assert client.parties() == []


def test_the_openapi_document_describes_every_endpoint(registry: Registry) -> None:
    """/openapi.json lists the endpoints with precise schemas and the mTLS requirement."""
    with _raw_client(registry.world, "site1") as client:
        schema = client.get(f"{registry.url}/openapi.json").json()
    assert set(schema["paths"]) == {
        "/parties",
        "/parties/{party_id}",
        "/sites",
        "/sites/{site_id}",
        "/registrations",
        "/changes",
        "/version",
        "/health",
    }
    components = schema["components"]
    assert components["securitySchemes"]["networkCertificate"]["type"] == "mutualTLS"
    site = components["schemas"]["SiteModel"]
    assert site["additionalProperties"] is False
    assert set(site["required"]) == set(site["properties"])
    body = schema["paths"]["/registrations"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["discriminator"]["propertyName"] == "action"
    responses = schema["paths"]["/changes"]["get"]["responses"]
    assert "422" not in responses
    assert responses["4XX"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorModel")


def test_health_and_version_report_the_registry_version(registry: Registry) -> None:
    """/health answers authenticated callers with the current version."""
    registry.register()
    with _raw_client(registry.world, "site2") as client:
        assert client.get(f"{registry.url}/health").json() == {"status": "ok", "version": 1}
        assert client.get(f"{registry.url}/version").json() == {"version": 1}
