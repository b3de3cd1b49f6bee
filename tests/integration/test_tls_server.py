"""The TLS server hands the verified client certificate to the app, and only that one."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from tests.support.servers import serving

from mahiru import pki, server
from mahiru.api.auth import CLIENT_CERT_HEADER, CertificateAuthenticator
from mahiru.api.errors import install_error_handlers
from mahiru.server.refusals import RefusalLog

SITE = "site:party1.example.org:site1"
PARTY = "party:party1.example.org:party1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A network CA, a server certificate, a site client, a user, and a foreign CA's client."""
    out = tmp_path_factory.mktemp("pki")
    ca = pki.create_network_ca()
    pki.save_certified_key(out / "ca.crt", out / "ca.key", ca)
    server = pki.issue_registry_certificate(ca)
    pki.save_certified_key(out / "server.crt", out / "server.key", server)
    site = pki.issue_site_certificate(ca, SITE)
    pki.save_certified_key(out / "site.crt", out / "site.key", site)
    user_ca = pki.create_user_ca(PARTY)
    pki.save_certified_key(out / "user-ca.crt", out / "user-ca.key", user_ca)
    user = pki.issue_user_certificate(user_ca, "alice", "admin")
    pki.save_certified_key(out / "alice.crt", out / "alice.key", user)
    foreign = pki.create_network_ca()
    intruder = pki.issue_site_certificate(foreign, SITE)
    pki.save_certified_key(out / "intruder.crt", out / "intruder.key", intruder)
    return {name: out / name for name in [p.name for p in out.iterdir()]}


def _app(world: dict[str, Path], trusted_proxies: tuple[str, ...] = ()) -> FastAPI:
    auth = CertificateAuthenticator(
        pki.load_certificate(world["ca.crt"]),
        user_ca=pki.load_certificate(world["user-ca.crt"]),
        trusted_proxies=trusted_proxies,
    )
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/service")
    def service(request: Request) -> dict[str, str]:
        return {"caller": auth.service(request).identity}

    @app.get("/user")
    def user(request: Request) -> dict[str, str]:
        caller = auth.user(request)
        return {"user": caller.user.name, "role": caller.user.role.value}

    return app


def _client(world: dict[str, Path], name: str) -> httpx.Client:
    context = ssl.create_default_context(cafile=world["ca.crt"])
    context.load_cert_chain(world[f"{name}.crt"], world[f"{name}.key"])
    return httpx.Client(verify=context, timeout=10)


def test_site_certificate_identifies_the_caller(world: dict[str, Path]) -> None:
    """A site's certificate reaches the app, which reads the site id from it."""
    with (
        serving(
            _app(world),
            certfile=world["server.crt"],
            keyfile=world["server.key"],
            client_ca_files=[world["ca.crt"], world["user-ca.crt"]],
        ) as url,
        _client(world, "site") as client,
    ):
        assert client.get(f"{url}/service").json() == {"caller": SITE}
        response = client.get(f"{url}/user")  # a known caller, but no user: 403
        assert response.status_code == 403
        assert response.json()["error"]["type"] == "PermissionDenied"


def test_user_certificate_identifies_user_and_role(world: dict[str, Path]) -> None:
    """A user's certificate from the owner's user CA gives name and role; not a service."""
    with (
        serving(
            _app(world),
            certfile=world["server.crt"],
            keyfile=world["server.key"],
            client_ca_files=[world["ca.crt"], world["user-ca.crt"]],
        ) as url,
        _client(world, "alice") as client,
    ):
        assert client.get(f"{url}/user").json() == {"user": "alice", "role": "admin"}
        assert client.get(f"{url}/service").status_code == 403  # known, but no service


def test_foreign_ca_and_missing_certificate_fail_the_handshake(
    world: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a certificate of a trusted CA the TLS handshake refuses: no request reaches
    the app, and the server's TLS layer names why (not some other transport failure)."""
    monkeypatch.setattr(server, "REFUSALS", RefusalLog(interval=0.0))
    reached: list[str] = []
    app = _app(world)

    @app.middleware("http")
    async def note(request: Any, call_next: Any) -> Any:
        reached.append(request.url.path)
        return await call_next(request)

    with (
        caplog.at_level(logging.WARNING, logger="mahiru.tls"),
        serving(
            app,
            certfile=world["server.crt"],
            keyfile=world["server.key"],
            client_ca_files=[world["ca.crt"]],
        ) as url,
    ):
        with _client(world, "intruder") as client, pytest.raises(httpx.TransportError):
            client.get(f"{url}/service")
        context = ssl.create_default_context(cafile=world["ca.crt"])
        with httpx.Client(verify=context) as client, pytest.raises(httpx.TransportError):
            client.get(f"{url}/service")
        with _client(world, "site") as client:  # the server still serves trusted callers
            assert client.get(f"{url}/service").json() == {"caller": SITE}
    reasons = [r.reason for r in caplog.records if r.name == "mahiru.tls"]  # type: ignore[attr-defined]
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith("certificate not accepted:"), reasons
    assert reasons[1] == "no client certificate", reasons
    assert reached == ["/service"]  # only the trusted caller's request


def test_forwarded_certificate_is_believed_only_from_trusted_proxies(
    world: dict[str, Path],
) -> None:
    """Behind a proxy the header works from a trusted address and is ignored otherwise."""
    from urllib.parse import quote

    header = {CLIENT_CERT_HEADER: quote(world["site.crt"].read_text())}
    trusted = _app(world, trusted_proxies=("127.0.0.1",))
    with serving(trusted, certfile=None, keyfile=None, client_ca_files=[]) as url:
        assert httpx.get(f"{url}/service", headers=header).json() == {"caller": SITE}
        foreign = {CLIENT_CERT_HEADER: quote(world["intruder.crt"].read_text())}
        assert httpx.get(f"{url}/service", headers=foreign).status_code == 401
    untrusted = _app(world, trusted_proxies=("10.9.9.9",))
    with serving(untrusted, certfile=None, keyfile=None, client_ca_files=[]) as url:
        response = httpx.get(f"{url}/service", headers=header)
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "a client certificate is required"
