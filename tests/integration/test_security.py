"""Every endpoint of the registry and the site refuses the wrong callers and changes nothing.

The endpoints are read from the apps' own OpenAPI documents, so an endpoint
added later is covered without touching this file. Each one is called over
real mutual TLS with a plausible path parameter and a minimal body, by
callers who must be refused: nobody, a foreign CA, a user at the external API
or the registry, a site at the internal API, a plain user at admin
endpoints, a forged proxy header. Afterwards everything readable is exactly
as before.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.servers import serving
from tests.support.sites import Network, may_access, may_use, network

from mahiru import pki
from mahiru.api.auth import CLIENT_CERT_HEADER, CLIENT_VERIFY_HEADER
from mahiru.api.registry_app import create_registry_app
from mahiru.api.site_app import create_site_app
from mahiru.bootstrap import build_registry, build_site
from mahiru.client.http import CLIENT_HEADER, TlsIdentity
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId

pytestmark = pytest.mark.integration

METHODS = ("get", "put", "post", "patch", "delete")
#: Internal operations that change assets or rules, or make the site call out: admins only.
ADMIN_ONLY = re.compile(r"^/internal/(assets|rules|replication)(/|$)")
#: Path parameters naming things the test network does not have (jobs, TES tasks, results).
NOTHING_THERE = ("{job_id}", "{result_id}", "{token}", "{review_id}", "{task_id}")


@dataclass(frozen=True)
class Operation:
    """One operation of an OpenAPI document."""

    method: str
    path: str
    spec: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI document."""
    return [
        Operation(method, path, spec)
        for path, item in document["paths"].items()
        for method, spec in item.items()
        if method in METHODS
    ]


@dataclass
class World:
    """A running network, the OpenAPI operations of both apps, and the values to call them with."""

    net: Network
    registry_ops: list[Operation]
    site_ops: list[Operation]
    asset_id: AssetId
    foreign: TlsIdentity
    foreign_user: TlsIdentity
    tmp: Path

    @property
    def site(self) -> Any:
        return self.net.sites["p1"]

    def path_values(self) -> dict[str, str]:
        site = self.net.sites["p1"]
        return {
            "asset_id": str(self.asset_id),
            "party_id": site.party.id,
            "site_id": site.id,
            "rule_id": "0" * 64,
            "result_id": "result:" + "0" * 64,
            "job_id": "00000000000000000000000000000000",
            "step": "compute",
            "step_id": "compute",
            "name": "result",
            "output": "result",
            "seq": "1",
            "review_id": "0" * 32,
            "task_id": "0" * 32,
        }


def _request(op: Operation, values: dict[str, str]) -> dict[str, Any]:
    """The arguments of an httpx request for `op`: path filled in, minimal body and query."""
    path = op.path
    for name in re.findall(r"{(\w+)}", path):
        value = values.get(name, "x")
        path = path.replace(f"{{{name}}}", quote(value, safe=":"))
    params: dict[str, str] = {}
    headers: dict[str, str] = {}
    for parameter in op.spec.get("parameters", []):
        if parameter.get("in") == "query" and parameter.get("required"):
            params[parameter["name"]] = "0"
        if parameter.get("in") == "header" and parameter.get("required"):
            headers[parameter["name"]] = "sha256:" + hashlib.sha256(b"x").hexdigest()
    kwargs: dict[str, Any] = {"params": params, "headers": headers}
    content = op.spec.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        kwargs["json"] = {}
    elif content:
        kwargs["content"] = b"x"
    return {"method": op.method.upper(), "url": path, **kwargs}


def _client(identity: TlsIdentity | None, base_url: str, ca: Path) -> httpx.Client:
    if identity is None:
        import ssl

        verify: Any = ssl.create_default_context(cafile=str(ca))
    else:
        verify = identity.ssl_context()
    # Marked as our clients mark their requests, so only the caller decides the answer.
    headers = {CLIENT_HEADER: "1"}
    return httpx.Client(base_url=base_url, verify=verify, timeout=30, headers=headers)


def _call_all(
    client: httpx.Client, ops: list[Operation], values: dict[str, str]
) -> dict[str, httpx.Response]:
    return {str(op): client.request(**_request(op, values)) for op in ops}


def _refusals(responses: dict[str, httpx.Response], allowed: tuple[int, ...]) -> list[str]:
    """What is wrong with the responses: unexpected statuses or bodies not in the error shape."""
    problems = []
    for name, response in responses.items():
        if response.status_code not in allowed:
            problems.append(f"{name}: HTTP {response.status_code} {response.text[:200]}")
            continue
        try:
            error = response.json()["error"]
            assert set(error) == {"type", "message", "details"}
            assert error["type"] in ("Unauthenticated", "PermissionDenied")
            assert error["message"]
        except (ValueError, KeyError, TypeError, AssertionError):
            problems.append(f"{name}: not the JSON error shape: {response.text[:200]}")
    return problems


def _snapshot(world: World) -> dict[str, Any]:
    """Everything readable without parameters: registry, both sites' lists, rule logs."""
    net = world.net
    state: dict[str, Any] = {}
    with _client(net.parties["p1"].client, net.registry.url, net.certs.ca) as raw:
        for path in ("/version", "/parties", "/sites", "/changes?since=0"):
            state[f"registry {path}"] = raw.get(path).json()
    for name, site in net.sites.items():
        with _client(site.party.admin, site.internal_url, net.certs.ca) as raw:
            for op in world.site_ops:
                if op.method == "get" and "{" not in op.path and op.path.startswith("/internal"):
                    path = op.path.removeprefix("/internal")
                    if path.startswith("/audit"):
                        continue  # it records every refused caller: that is its job
                    state[f"{name} {path}"] = raw.get(path).json()
            state[f"{name} /rules+replicated"] = raw.get(
                "/rules", params={"include_replicated": "true"}
            ).json()
        peer = net.sites["p2" if name == "p1" else "p1"].identity
        with _client(peer, site.external_url, net.certs.ca) as raw:
            state[f"{name} /external/rules/changes"] = raw.get("/rules/changes?since=0").json()
    for item in state.values():  # the status of replication carries times: keep the counts
        if isinstance(item, dict):
            item.pop("replication", None)
    return state


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two registered sites; p1 stores an asset with an image and a rule letting p2 access it."""
    root = tmp_path_factory.mktemp("security")
    urls = sqlite_urls(root)
    with network(root, urls, names=("p1", "p2")) as net:
        site = net.sites["p1"]
        namespace = site.party.namespace
        asset_id = AssetId.parse(f"asset:{namespace}:data1:{namespace}:site")
        image = root / "data1.tar"
        write_image(image, 11_000, seed=b"secret data")
        net.replicate_all()
        with site.admin() as admin:
            admin.upload_asset(Asset(asset_id, AssetKind.DATA, {"v": 1}), image)
            admin.add_rule(site.party.sign(may_access(net.sites["p2"].id, str(asset_id))))
            admin.add_rule(site.party.sign(may_use(site.party.id, str(asset_id))))
        net.replicate_all()
        registry_app = create_registry_app(build_registry(net.registry.config))
        registry_ops = operations(registry_app.openapi())
        assert site.app is not None
        site_ops = operations(site.app.openapi())
        foreign_ca = pki.create_network_ca("a foreign CA")
        foreign_certs = root / "foreign"
        foreign_certs.mkdir()
        foreign = _save(foreign_certs, "site", pki.issue_site_certificate(foreign_ca, site.id))
        foreign_party = pki.create_party_credentials(site.party.id)
        foreign_user = _save(
            foreign_certs,
            "admin",
            pki.issue_user_certificate(foreign_party.user_ca, "admin", "admin"),
        )
        yield World(
            net,
            registry_ops,
            site_ops,
            asset_id,
            TlsIdentity(foreign.cert, foreign.key, net.certs.ca),
            TlsIdentity(foreign_user.cert, foreign_user.key, net.certs.ca),
            root,
        )


def _save(folder: Path, name: str, certified: pki.CertifiedKey) -> TlsIdentity:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    pki.save_certified_key(cert, key, certified)
    return TlsIdentity(cert, key, cert)


@pytest.fixture
def unchanged(world: World) -> Iterator[None]:
    """Asserts after the test that nothing readable changed."""
    before = _snapshot(world)
    yield
    assert _snapshot(world) == before


def _internal(world: World) -> list[Operation]:
    return [op for op in world.site_ops if op.path.startswith("/internal/")]


def _external(world: World) -> list[Operation]:
    return [op for op in world.site_ops if op.path.startswith("/external/")]


def test_the_openapi_documents_list_the_known_endpoints(world: World) -> None:
    """The enumeration is not vacuous: both APIs and the registry are all there."""
    names = {str(op) for op in world.registry_ops + world.site_ops}
    assert {"GET /version", "POST /registrations", "GET /changes"} <= names
    assert {"POST /internal/assets", "PUT /internal/assets/{asset_id}/image"} <= names
    assert {"POST /internal/rules", "GET /external/assets/{asset_id}/image"} <= names
    assert {"GET /external/rules/changes"} <= names
    assert any(ADMIN_ONLY.match(op.path) and op.method != "get" for op in world.site_ops)


def test_the_right_callers_get_answers_with_these_parameters(world: World) -> None:
    """Control: the path values used here are real, so the refusals below are not 404s."""
    net, site = world.net, world.site
    base = f"https://127.0.0.1:{site.port}"
    callers = (
        (net.parties["p1"].client, net.registry.url, world.registry_ops),
        (site.party.admin, base, _internal(world)),
        (net.sites["p2"].identity, base, _external(world)),
    )
    failed = []
    for identity, url, ops in callers:
        with _client(identity, url, net.certs.ca) as raw:
            for op in ops:
                if op.method == "get":
                    response = raw.request(**_request(op, world.path_values()))
                    # Nothing has these ids yet: not found, but not a malformed request.
                    missing = any(name in op.path for name in NOTHING_THERE)
                    expected = (200, 404) if missing else (200,)
                    if response.status_code not in expected:
                        failed.append(f"{op}: HTTP {response.status_code} {response.text[:200]}")
    assert failed == []


@pytest.mark.parametrize("who", ["nobody", "foreign site", "foreign user"])
def test_without_a_certificate_of_the_network_the_handshake_fails(
    world: World, who: str, unchanged: None
) -> None:
    """No certificate, or one from another CA: no endpoint of either app is even reached."""
    identity = {"nobody": None, "foreign site": world.foreign, "foreign user": world.foreign_user}[
        who
    ]
    net, site = world.net, world.site
    reached = []
    for base, ops in (
        (net.registry.url, world.registry_ops),
        (f"https://127.0.0.1:{site.port}", world.site_ops),
    ):
        for op in ops:
            with _client(identity, base, net.certs.ca) as raw:
                try:
                    response = raw.request(**_request(op, world.path_values()))
                except httpx.TransportError:
                    continue
                reached.append(f"{op}: HTTP {response.status_code}")
    assert reached == []


def test_users_are_refused_by_the_external_api(world: World, unchanged: None) -> None:
    """An admin of the site's own party is known, but no site: 403 on every external endpoint."""
    site = world.site
    with _client(site.party.admin, f"https://127.0.0.1:{site.port}", world.net.certs.ca) as raw:
        responses = _call_all(raw, _external(world), world.path_values())
    assert _refusals(responses, (403,)) == []
    assert all("internal API" in r.json()["error"]["message"] for r in responses.values())


def test_sites_are_refused_by_the_internal_api(world: World, unchanged: None) -> None:
    """A registered peer site, and the site's own certificate, are known but no users: 403."""
    site = world.site
    for identity in (world.net.sites["p2"].identity, site.identity):
        with _client(identity, f"https://127.0.0.1:{site.port}", world.net.certs.ca) as raw:
            responses = _call_all(raw, _internal(world), world.path_values())
        assert _refusals(responses, (403,)) == []
        assert all("external API" in r.json()["error"]["message"] for r in responses.values())


def test_unregistered_network_members_are_refused_by_the_external_api(
    world: World, unchanged: None
) -> None:
    """A network certificate of no registered site (a party client, a stranger site): 401/403."""
    site = world.site
    stranger = world.net.certs.site("site:p9.org:site")
    for identity in (site.party.client, stranger):
        with _client(identity, f"https://127.0.0.1:{site.port}", world.net.certs.ca) as raw:
            responses = _call_all(raw, _external(world), world.path_values())
        assert _refusals(responses, (401, 403)) == []


def _call_all_malformed(
    client: httpx.Client, ops: list[Operation], values: dict[str, str]
) -> dict[str, httpx.Response]:
    """Call every operation with a body that is not JSON (nor anything the route expects)."""
    responses = {}
    for op in ops:
        request = _request(op, values)
        request.pop("json", None)
        request["content"] = b"{not json"
        request["headers"] = {**request["headers"], "content-type": "application/json"}
        responses[str(op)] = client.request(**request)
    return responses


def test_refused_callers_are_refused_before_their_body_is_read(
    world: World, unchanged: None
) -> None:
    """A wrong caller with a malformed body gets 401/403, never a validation error."""
    site = world.site
    base_url = f"https://127.0.0.1:{site.port}"
    stranger = world.net.certs.site("site:p8.org:site")
    calls = [
        (world.net.sites["p2"].identity, _internal(world), (403,)),
        (site.party.admin, _external(world), (403,)),
        (stranger, _external(world), (401, 403)),
    ]
    for identity, ops, allowed in calls:
        with _client(identity, base_url, world.net.certs.ca) as raw:
            responses = _call_all_malformed(raw, ops, world.path_values())
        assert _refusals(responses, allowed) == []


def test_plain_users_are_refused_by_admin_endpoints(world: World, unchanged: None) -> None:
    """Changing assets or rules needs the admin role: 403 for a plain user."""
    site = world.site
    admin_ops = [op for op in _internal(world) if ADMIN_ONLY.match(op.path) and op.method != "get"]
    with _client(site.party.user, f"https://127.0.0.1:{site.port}", world.net.certs.ca) as raw:
        responses = _call_all(raw, admin_ops, world.path_values())
    assert _refusals(responses, (403,)) == []
    assert all("not an admin" in r.json()["error"]["message"] for r in responses.values())


def test_users_are_refused_by_the_registry(world: World, unchanged: None) -> None:
    """The registry refuses user certificates at the handshake, and in the app if TLS let one by."""
    net, site = world.net, world.site
    with _client(site.party.admin, net.registry.url, net.certs.ca) as raw:
        for op in world.registry_ops:
            with pytest.raises(httpx.TransportError):
                raw.request(**_request(op, world.path_values()))
    # A registry whose TLS also trusts the user CA (a misconfiguration) still refuses them.
    lenient = create_registry_app(build_registry(net.registry.config))
    with (
        serving(
            lenient,
            certfile=net.registry.config.tls.cert,
            keyfile=net.registry.config.tls.key,
            client_ca_files=[net.certs.ca, site.party.user_ca],
        ) as url,
        _client(site.party.admin, url, net.certs.ca) as raw,
    ):
        responses = _call_all(raw, world.registry_ops, world.path_values())
    assert _refusals(responses, (401,)) == []
    assert all("network CA" in r.json()["error"]["message"] for r in responses.values())


def _proxied_site_app(world: World, trusted: list[str]) -> Any:
    """p1's site app configured for a TLS-terminating proxy at `trusted`, on its own database."""
    site = world.site
    tls = site.config.tls.model_copy(update={"trusted_proxies": trusted})
    config = site.config.model_copy(
        update={
            "tls": tls,
            "database_url": f"sqlite:///{world.tmp / f'proxied-{len(trusted)}.db'}",
            "data_dir": world.tmp / "proxied-data",
        }
    )
    return create_site_app(build_site(config), start_replication=False)


def test_a_forged_certificate_header_from_an_untrusted_address_is_ignored(
    world: World, unchanged: None
) -> None:
    """Behind a proxy, the header counts only from the proxy's address: else 401 everywhere."""
    site, net = world.site, world.net
    forged = {CLIENT_CERT_HEADER: quote(site.party.admin.cert.read_text())}
    peer = {CLIENT_CERT_HEADER: quote(net.sites["p2"].identity.cert.read_text())}
    values = world.path_values()
    with (
        serving(
            _proxied_site_app(world, ["10.9.9.9"]), certfile=None, keyfile=None, client_ca_files=[]
        ) as url,
        httpx.Client(base_url=url, timeout=30) as raw,
    ):
        problems = []
        for op in world.site_ops:
            args = _request(op, values)
            headers = forged if op.path.startswith("/internal/") else peer
            response = raw.request(**{**args, "headers": {**args["headers"], **headers}})
            problems += _refusals({str(op): response}, (401,))
            if response.status_code == 401:
                assert response.json()["error"]["message"] == "a client certificate is required"
        assert problems == []
    registry_config = net.registry.config.model_copy(
        update={"tls": net.registry.config.tls.model_copy(update={"trusted_proxies": ["10.9.9.9"]})}
    )
    network_cert = {CLIENT_CERT_HEADER: quote(net.parties["p1"].client.cert.read_text())}
    with (
        serving(
            create_registry_app(build_registry(registry_config)),
            certfile=None,
            keyfile=None,
            client_ca_files=[],
        ) as url,
        httpx.Client(base_url=url, timeout=30, headers=network_cert) as raw,
    ):
        assert _refusals(_call_all(raw, world.registry_ops, values), (401,)) == []


def test_the_certificate_header_counts_from_a_trusted_proxy_only_if_verified(
    world: World, unchanged: None
) -> None:
    """From the trusted address the header identifies the user, unless the proxy failed it."""
    site = world.site
    header = {CLIENT_CERT_HEADER: quote(site.party.admin.cert.read_text())}
    with (
        serving(
            _proxied_site_app(world, ["127.0.0.1"]), certfile=None, keyfile=None, client_ca_files=[]
        ) as url,
        httpx.Client(base_url=url, timeout=30) as raw,
    ):
        assert raw.get("/internal/assets", headers=header).status_code == 200
        failed = raw.get("/internal/assets", headers={**header, CLIENT_VERIFY_HEADER: "FAILED:x"})
        assert failed.status_code == 401
        assert "could not verify" in failed.json()["error"]["message"]
        foreign = {CLIENT_CERT_HEADER: quote(world.foreign_user.cert.read_text())}
        refused = raw.get("/internal/assets", headers=foreign)
        assert refused.status_code == 401
        assert "user CA" in refused.json()["error"]["message"]


def _tampered(signed: dict[str, Any]) -> dict[str, Any]:
    signature = bytearray(base64.b64decode(signed["signature"]))
    signature[0] ^= 0xFF
    return {**signed, "signature": base64.b64encode(bytes(signature)).decode()}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("bad signature", r"signature"),
        ("wrong party", r"signed by the wrong party"),
        ("another namespace", r"stores only rules of party:p1\.org:p1's namespace"),
    ],
)
def test_bad_rules_are_rejected_with_the_reason(
    world: World, case: str, reason: str, unchanged: None
) -> None:
    """A rule is stored only with a valid signature by the owner of its namespace."""
    net, site = world.net, world.site
    p1, p2 = net.parties["p1"], net.parties["p2"]
    rule = may_access(net.sites["p2"].id, f"asset_collection:{p1.namespace}:more")
    if case == "bad signature":
        body = _tampered(p1.sign(rule).to_dict())
    elif case == "wrong party":
        body = p2.sign(rule).to_dict()
    else:
        body = p1.sign({**rule, "asset": "asset_collection:p9.org:x"}).to_dict()
    with _client(site.party.admin, site.internal_url, net.certs.ca) as raw:
        response = raw.post("/rules", json=body)
    # A rule outside the site owner's namespace is not for this site to take (403),
    # whoever signed it; a rule in it with a bad signature is bad input (400).
    expected = (403, "PermissionDenied") if case == "another namespace" else (400, "InvalidInput")
    assert (response.status_code, response.json()["error"]["type"]) == expected, response.text
    error = response.json()["error"]
    assert re.search(reason, error["message"]), error["message"]


def test_every_operation_documents_one_answer_per_kind_of_refusal(world: World) -> None:
    """401 no identity, 403 a known caller refused, 413 a body over the limit: in both
    OpenAPI documents, on every operation."""
    for op in [*world.registry_ops, *world.site_ops]:
        responses = op.spec.get("responses", {})
        missing = {"401", "403", "413"} - set(responses)
        assert not missing, f"{op} does not document {sorted(missing)}"
        assert "known caller" in responses["403"]["description"], op
