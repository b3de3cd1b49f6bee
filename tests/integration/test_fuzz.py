"""Schemathesis fuzzes every operation of the registry and the site, in-process.

Requests reach the apps through schemathesis' ASGI transport, whose client
address ("testclient") is configured as the trusted proxy, so a certificate
header gets them past authentication: a network certificate for the registry,
an admin's certificate for the internal API, a registered peer's for the
external one. Some runs send no certificate at all. Every response must be
free of server errors, come in the JSON error shape when it is an error, and
conform to the OpenAPI document. Bounded and deterministic: a few derandomized
examples per operation.
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

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.support.images import data_layer, image_bytes
from tests.support.sites import DATABASE_PARAMS, DatabaseUrls, database_urls

from mahiru import pki
from mahiru.api.auth import CLIENT_CERT_HEADER
from mahiru.api.registry_app import create_registry_app
from mahiru.api.site_app import create_site_app
from mahiru.bootstrap import (
    OutgoingOverrides,
    RegistryOverrides,
    SiteOverrides,
    build_registry,
    build_site,
)
from mahiru.client.http import CLIENT_HEADER
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

pytestmark = pytest.mark.integration

#: The address schemathesis' ASGI client gives as the client's.
TEST_CLIENT = "testclient"
MAX_EXAMPLES = 12
NEGATIVE_EXAMPLES = 6
#: Cases with the ids of things that exist, so that the success paths are fuzzed too.
KNOWN_EXAMPLES = 6

#: Every fuzzed request comes from one address and a few certificates: the rate limits of
#: refused and external requests (tests/integration/test_bounded_callers.py) stay out of it.
UNLIMITED = CallerLimits(refused_burst=1_000_000, external_burst=1_000_000)


@schemathesis.check
def error_shape(ctx: Any, response: Response, case: Case) -> bool | None:
    """Every 4xx and 5xx body is `{"error": {"type", "message", "details"}}`."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"type", "message", "details"}, error
    assert isinstance(error["type"], str) and isinstance(error["message"], str), error
    assert error["message"], "an error without a message"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_shape,
]


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


@pytest.fixture(scope="module", params=DATABASE_PARAMS)
def apps(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Apps]:
    """A registry with parties p1 and p2 and their sites, and p1's site, replicated once."""
    with database_urls(request, tmp_path_factory) as urls:
        yield from _apps(tmp_path_factory.mktemp("fuzz"), urls)


def _apps(root: Path, urls: DatabaseUrls) -> Iterator[Apps]:
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


def _operations(app: FastAPI) -> list[APIOperation]:
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    found = [result.ok() for result in schema.get_all_operations()]
    # Deletions last, so the other operations still find the known asset.
    return sorted(found, key=lambda operation: operation.method.lower() == "delete")


def _fuzz(
    operation: APIOperation,
    headers: dict[str, str],
    *,
    mode: GenerationMode,
    max_examples: int,
    statuses: list[int] | None = None,
    path_parameters: dict[str, str] | None = None,
) -> None:
    """Run `max_examples` derandomized cases of `operation` and check every response."""
    seen: list[int] = []

    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        known = {
            name: value
            for name, value in (path_parameters or {}).items()
            if "{" + name + "}" in operation.path
        }
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=known or None)
        case = data.draw(strategy)
        response = case.call(headers=headers)
        seen.append(response.status_code)
        if statuses is not None:
            assert response.status_code in statuses, (
                f"{operation.label}: HTTP {response.status_code} {response.text[:300]}"
            )
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()
    assert seen, f"{operation.label}: no requests were made"


#: Schema keys that say nothing about a value.
_LABELS = {"title", "description"}


def _free_text(schema: dict[str, Any]) -> bool:
    """Whether `schema` allows any text: a bare string, maybe optional (`anyOf` with null)."""
    bare = {key: value for key, value in schema.items() if key not in _LABELS}
    if set(bare) == {"anyOf"}:
        branches = [branch for branch in bare["anyOf"] if branch != {"type": "null"}]
        return len(branches) == 1 and _free_text(branches[0])
    return bare == {"type": "string"}


def _can_be_invalid(operation: APIOperation) -> bool:
    """Whether the operation has a request that breaks its schema: a body, or a parameter
    that constrains its value or must be present. Every request to one whose only
    parameters are free path text is valid, and a search for an invalid one only burns
    hypothesis' whole budget of rejected draws (seconds per operation)."""
    raw = operation.definition.raw
    if "requestBody" in raw:
        return True
    for parameter in raw.get("parameters", []):
        if not _free_text(parameter.get("schema", {})):
            return True
        if parameter.get("in") != "path" and parameter.get("required"):
            return True
    return False


def _fuzz_operation(
    operation: APIOperation, headers: dict[str, str], known: dict[str, str]
) -> None:
    """Valid cases; invalid ones where there are any; valid ones with ids that exist."""
    _fuzz(operation, headers, mode=GenerationMode.POSITIVE, max_examples=MAX_EXAMPLES)
    if _can_be_invalid(operation):
        _fuzz(operation, headers, mode=GenerationMode.NEGATIVE, max_examples=NEGATIVE_EXAMPLES)
    if any("{" + name + "}" in operation.path for name in known):
        _fuzz(
            operation,
            headers,
            mode=GenerationMode.POSITIVE,
            max_examples=KNOWN_EXAMPLES,
            path_parameters=known,
        )


def _site_headers(apps: Apps, operation: APIOperation) -> dict[str, str]:
    # Marked as our clients mark their requests, so the fuzz reaches the routes themselves.
    if operation.path.startswith("/external/"):
        return {CLIENT_CERT_HEADER: apps.peer_cert, CLIENT_HEADER: "1"}
    return {CLIENT_CERT_HEADER: apps.admin_cert, CLIENT_HEADER: "1"}


def test_the_registry_holds_up_to_fuzzing(apps: Apps) -> None:
    """Valid and invalid requests from a network member: no 5xx, the error shape, the schema."""
    headers = {CLIENT_CERT_HEADER: apps.network_cert, CLIENT_HEADER: "1"}
    for operation in _operations(apps.registry):
        _fuzz_operation(operation, headers, apps.known)


def test_the_site_holds_up_to_fuzzing(apps: Apps) -> None:
    """Both APIs, as the owner's admin and as a registered peer: the same checks."""
    for operation in _operations(apps.site):
        _fuzz_operation(operation, _site_headers(apps, operation), apps.known)


@pytest.mark.parametrize("app_name", ["registry", "site"])
def test_without_a_certificate_every_operation_is_refused(apps: Apps, app_name: str) -> None:
    """No certificate header (or the TLS scope): 401 in the error shape, whatever the request."""
    app = apps.registry if app_name == "registry" else apps.site
    for operation in _operations(app):
        _fuzz(operation, {}, mode=GenerationMode.POSITIVE, max_examples=4, statuses=[401])
