"""What the apps remember of their callers between requests: each certificate is examined
once, and a registered site is remembered only until the registry replica changes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Request

from mahiru import pki
from mahiru.api import auth
from mahiru.clock import utc_now
from mahiru.errors import PermissionDenied, Unauthenticated
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registry import (
    ChangeAction,
    PartyRecord,
    RegistryChange,
    SiteEndpoints,
    SiteRecord,
)
from mahiru.services.site.peers import RegisteredSites
from mahiru.storage import Database, ReplicaRepository

pytestmark = pytest.mark.integration

CA = pki.create_network_ca()
SITE = SiteId("p1.example.org", "s1")
CERT = pki.issue_site_certificate(CA, str(SITE))


def _request(certificate: pki.CertifiedKey) -> Request:
    pem = pki.certificate_pem(certificate.certificate)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/external/rules/changes",
        "headers": [],
        "extensions": {"tls": {"client_cert_chain": [pem]}},
    }
    return Request(scope)


def test_a_certificate_is_checked_against_its_ca_once_however_often_it_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issuer's signature is verified at the first request only; the answer is the same."""
    checks: list[object] = []
    verify = auth.issued_by

    def counted(cert: Any, issuer: Any) -> bool:
        checks.append(cert)
        return verify(cert, issuer)

    monkeypatch.setattr(auth, "issued_by", counted)
    authenticator = auth.CertificateAuthenticator(CA.certificate)
    callers = [authenticator.service(_request(CERT)) for _ in range(5)]
    assert len(checks) == 1
    assert {str(caller) for caller in callers} == {str(SITE)}


def test_a_remembered_certificate_from_another_ca_is_still_refused() -> None:
    """A refusal is remembered as one: a stranger's certificate is refused every time."""
    stranger = pki.issue_site_certificate(pki.create_network_ca(), str(SITE))
    authenticator = auth.CertificateAuthenticator(CA.certificate)
    for _ in range(3):
        with pytest.raises(Unauthenticated, match="not issued by the network CA"):
            authenticator.service(_request(stranger))


def _change(version: int, record: PartyRecord | SiteRecord | None, subject: Any) -> RegistryChange:
    action = ChangeAction.ADDED if record is not None else ChangeAction.REMOVED
    return RegistryChange(version, action, subject, record, utc_now())


def test_a_site_removed_from_the_replica_is_refused_at_its_next_call(db: Database) -> None:
    """A site is identified from memory until the registry replica is written; then it is
    looked up again, and a site no longer registered is refused."""
    owner = PartyId("p1.example.org", "p1")
    party = PartyRecord(owner, "p1.example.org", "-----PUBLIC KEY-----", "-----CA-----")
    site = SiteRecord(
        SITE,
        owner,
        owner,
        SiteEndpoints("https://s1:8443", "https://s1:9443"),
        pki.certificate_pem(CERT.certificate),
        True,
        True,
    )
    replica = ReplicaRepository(db)
    replica.apply_registry_changes([_change(1, party, owner), _change(2, site, SITE)], 2)
    sites = RegisteredSites(replica)
    assert sites.known(str(SITE), CERT.certificate) is None
    assert sites.identify(str(SITE), CERT.certificate) == site
    assert sites.known(str(SITE), CERT.certificate) == site
    replica.apply_registry_changes([_change(3, None, SITE)], 3)
    assert sites.known(str(SITE), CERT.certificate) is None
    with pytest.raises(PermissionDenied, match="not a registered site"):
        sites.identify(str(SITE), CERT.certificate)
