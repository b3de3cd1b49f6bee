"""A browser holding a user's certificate cannot be made to change anything by another web site.

Every route that changes state, on both APIs of a site and on the registry,
is read from the apps' own route tables (so a route added later is covered
without touching this file) and called over real mutual TLS with the
certificate of a caller who may use it, the way a page of another web site
could make a browser send it: a plain HTML form (form-encoded, text/plain,
multipart), a body-less POST, or a request the browser marks as coming from
another origin. Each is refused with 403 in the error shape and changes
nothing, while our own clients keep working.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import fastapi.routing
import httpx
import pytest
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.sites import Network, SiteServer, may_access, network, waiting_job

from mahiru.api.registry_app import create_registry_app
from mahiru.bootstrap import build_registry
from mahiru.client.http import CLIENT_HEADER, TlsIdentity
from mahiru.client.jobs import JobsClient, PeerJobsClient
from mahiru.errors import MahiruError
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.model.jobs import JobState

pytestmark = pytest.mark.integration

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: What the refusal of the browser boundary says, whichever reason.
REFUSAL = "must come from this service's own pages or from a Mahiru client"
ELSEWHERE = "https://elsewhere.example"
JSON = {"content-type": "application/json"}
MARKED = {CLIENT_HEADER: "1"}

#: What a page of another web site can make a browser send without asking the server first
#: (no CORS preflight): a simple form, or a body-less POST.
SIMPLE: dict[str, tuple[dict[str, str], bytes]] = {
    "form-encoded": (
        {"content-type": "application/x-www-form-urlencoded"},
        b"token=x&reason=forged",
    ),
    "text/plain": ({"content-type": "text/plain"}, b'{"action": "cancel"}'),
    "multipart": (
        {"content-type": "multipart/form-data; boundary=b"},
        b'--b\r\nContent-Disposition: form-data; name="token"\r\n\r\nx\r\n--b--\r\n',
    ),
    "no content type": ({}, b""),
    "json with parameters wrong": ({"content-type": "text/plain; application/json"}, b"{}"),
}


def _marked_by_a_browser(port: int) -> dict[str, dict[str, str]]:
    """Requests our clients would send (JSON and marked) but a browser flagged as foreign."""
    return {
        "Origin of another site": {"origin": ELSEWHERE},
        "Origin of another port": {"origin": f"https://127.0.0.1:{port + 1}"},
        "Origin of the other scheme": {"origin": f"http://127.0.0.1:{port}"},
        "Origin null": {"origin": "null"},
        "Sec-Fetch-Site cross-site": {"sec-fetch-site": "cross-site"},
        "Sec-Fetch-Site same-site": {"sec-fetch-site": "same-site"},
        # The browser's word wins over an Origin that contradicts it.
        "same-site with this site's Origin": {
            "sec-fetch-site": "same-site",
            "origin": f"https://127.0.0.1:{port}",
        },
    }


@dataclass
class World:
    """Two sites and the registry; site p1 stores an asset and holds a job that waits."""

    net: Network
    job_id: str
    asset_id: str

    @property
    def site(self) -> SiteServer:
        return self.net.sites["p1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("cross-site")
    with network(root, sqlite_urls(root), ("p1", "p2")) as net:
        net.replicate_all()  # a body-less POST of our client (/internal/replication)
        site = net.sites["p1"]
        site.stop()
        site.start(jobs=False)
        namespace = site.party.namespace
        asset_id = f"asset:{namespace}:data:{namespace}:site"
        yield World(net, waiting_job(site), asset_id)


def _routes_of(app: Any, methods: set[str] | frozenset[str]) -> list[tuple[str, str]]:
    """(method, path template) of every route of `app` for `methods`, however nested."""
    # Newer FastAPI keeps included routers nested in app.routes and walks them with this.
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = list(walk(app.routes)) if walk is not None else app.routes
    return sorted(
        (method, route.path)
        for route in routes
        for method in set(getattr(route, "methods", None) or ()) & methods
    )


def _routes(app: Any) -> list[tuple[str, str]]:
    """Every state-changing route of `app`."""
    return _routes_of(app, STATE_CHANGING)


def _fill(path: str, world: World) -> str:
    values = {"job_id": world.job_id, "asset_id": world.asset_id, "site_id": world.site.id}
    for name in re.findall(r"{(\w+)}", path):
        path = path.replace(f"{{{name}}}", quote(values.get(name, "x"), safe=":"))
    return path


@dataclass(frozen=True)
class Target:
    """A state-changing route and who may call it."""

    method: str
    path: str
    base: str
    identity: TlsIdentity

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _targets(world: World) -> list[Target]:
    site, net = world.site, world.net
    assert site.app is not None
    base = f"https://127.0.0.1:{site.port}"
    peer = net.sites["p2"].identity
    targets = [
        Target(
            method,
            _fill(path, world),
            base,
            peer if path.startswith("/external/") else site.party.admin,
        )
        for method, path in _routes(site.app)
    ]
    registry_app = create_registry_app(build_registry(net.registry.config))
    targets += [
        Target(method, _fill(path, world), net.registry.url, net.parties["p1"].client)
        for method, path in _routes(registry_app)
    ]
    return targets


def _snapshot(world: World) -> dict[str, Any]:
    """What the test's state-changing routes could change, as the owners read it."""
    net, state = world.net, {}
    with httpx.Client(verify=net.parties["p1"].client.ssl_context(), timeout=30) as raw:
        for path in ("/parties", "/sites", "/changes?since=0"):
            state[f"registry {path}"] = raw.get(f"{net.registry.url}{path}").json()
    for name, site in net.sites.items():
        with httpx.Client(verify=site.party.admin.ssl_context(), timeout=30) as raw:
            for path in ("/assets", "/rules", "/jobs"):
                state[f"{name} {path}"] = raw.get(f"{site.internal_url}{path}").json()
    return state


def _job_state(world: World) -> JobState:
    with JobsClient(world.site.internal_url, world.site.party.user) as client:
        return client.status(world.job_id).status.state


def _problems(target: Target, variant: str, response: httpx.Response) -> list[str]:
    """What is wrong with the answer to a request that must be refused."""
    try:
        error = response.json()["error"]
        shape = set(error) == {"type", "message", "details"}
    except (ValueError, KeyError, TypeError):
        return [f"{target} ({variant}): not the error shape: HTTP {response.status_code}"]
    if response.status_code != 403 or error["type"] != "PermissionDenied" or not shape:
        return [f"{target} ({variant}): HTTP {response.status_code} {response.text[:160]}"]
    form = "/internal/ui/" in target.path  # refused by its token when the browser says nothing
    if not form and REFUSAL not in error["message"]:
        return [f"{target} ({variant}): refused for another reason: {error['message']}"]
    return []


def test_the_route_tables_hold_the_known_state_changing_routes(world: World) -> None:
    """The walk is not vacuous: cancels, uploads, rules and registrations are all in it."""
    names = {str(target).replace(world.job_id, "{job_id}") for target in _targets(world)}
    assert {
        "POST /internal/jobs/{job_id}/cancel",
        "POST /internal/ui/jobs/{job_id}/cancel",
        "POST /external/jobs/{job_id}/cancel",
        "POST /internal/rules",
        "POST /registrations",
    } <= names
    assert any(name.startswith("PUT /internal/assets/") for name in names)


def test_requests_a_page_elsewhere_can_make_a_browser_send_are_refused(world: World) -> None:
    """Forms (form-encoded, text/plain, multipart) and body-less POSTs change nothing: 403."""
    before = _snapshot(world)
    problems: list[str] = []
    for target in _targets(world):
        with httpx.Client(verify=target.identity.ssl_context(), timeout=30) as browser:
            for variant, (headers, body) in SIMPLE.items():
                url = f"{target.base}{target.path}"
                response = browser.request(target.method, url, headers=headers, content=body)
                problems += _problems(target, variant, response)
    assert problems == []
    assert _job_state(world) is JobState.SUBMITTED
    assert _snapshot(world) == before


def test_requests_a_browser_marks_as_from_another_origin_are_refused(world: World) -> None:
    """JSON and marked like our clients' requests, but with a foreign Origin or Sec-Fetch-Site:
    403, and nothing changes; the dashboard's form with its valid token too."""
    site = world.site
    before = _snapshot(world)
    problems: list[str] = []
    with httpx.Client(verify=site.party.user.ssl_context(), timeout=30) as user:
        page = user.get(f"{site.internal_url}/ui/jobs/{world.job_id}").text
    token = re.search(r'name="token" value="([0-9a-f]+)"', page)
    assert token is not None
    for target in _targets(world):
        identity = site.party.user if "/internal/ui/" in target.path else target.identity
        body = f"token={token.group(1)}".encode() if "/internal/ui/" in target.path else b"{}"
        with httpx.Client(verify=identity.ssl_context(), timeout=30) as browser:
            for variant, marks in _marked_by_a_browser(site.port).items():
                headers = {**JSON, **MARKED, **marks}
                url = f"{target.base}{target.path}"
                response = browser.request(target.method, url, headers=headers, content=body)
                problems += _problems(target, variant, response)
                if "/internal/ui/" in target.path:
                    assert REFUSAL in response.text, (variant, response.text)
    assert problems == []
    assert _job_state(world) is JobState.SUBMITTED
    assert _snapshot(world) == before


def test_marked_requests_get_past_the_check_to_the_route(world: World) -> None:
    """Control: the same routes called as our clients call them are not refused by the check
    (whatever their handler then says about the made-up body)."""
    for target in _targets(world):
        if target.path.endswith("/cancel"):
            continue  # the last test cancels the job with our client
        with httpx.Client(verify=target.identity.ssl_context(), timeout=30) as ours:
            for headers in (MARKED, JSON, {"origin": target.base, "sec-fetch-site": "same-origin"}):
                url = f"{target.base}{target.path}"
                if "origin" in headers and not target.path.startswith("/internal/ui/"):
                    headers = {**headers, **MARKED}  # a same-origin fetch of a script: marked
                response = ours.request(target.method, url, headers=headers, content=b"{}")
                assert REFUSAL not in response.text, (str(target), headers, response.text)


def test_our_clients_still_change_what_they_may(world: World) -> None:
    """Uploads (a streamed image), rules and cancels from mahiru's clients go through."""
    site, net = world.site, world.net
    image = net.certs.root / "data.tar"
    write_image(image, 5_000)
    with site.admin() as admin:
        admin.upload_asset(Asset(AssetId.parse(world.asset_id), AssetKind.DATA), image)
        admin.add_rule(site.party.sign(may_access(net.sites["p2"].id, world.asset_id)))
        assert admin.get_asset(AssetId.parse(world.asset_id)).asset.image_digest
    with JobsClient(site.internal_url, site.party.user) as client:
        cancelled = client.cancel(world.job_id)
    assert cancelled.status.state is JobState.CANCELLED
    with PeerJobsClient(site.external_url, net.sites["p2"].identity) as peer:
        try:
            peer.cancel(world.job_id)  # not p2's job: refused by the route, not by the check
        except MahiruError as error:
            assert REFUSAL not in error.message


def test_every_page_and_answer_forbids_framing_and_foreign_loads(world: World) -> None:
    """Each dashboard page, the API's answers (errors and refusals too) and the registry's send
    a strict Content-Security-Policy, X-Frame-Options, Referrer-Policy and nosniff."""
    site, net = world.site, world.net
    assert site.app is not None
    pages = [
        path.replace("{job_id}", world.job_id)
        for method, path in _routes_of(site.app, {"GET"})
        if path.startswith("/internal/ui/")
    ]
    assert {"/internal/ui/jobs", "/internal/ui/style.css", "/internal/ui/audit"} <= set(pages)
    base = f"https://127.0.0.1:{site.port}"
    answers: dict[str, httpx.Response] = {}
    with httpx.Client(verify=site.party.user.ssl_context(), timeout=30) as user:
        for path in pages:
            answers[path] = user.get(f"{base}{path}")
        answers["API"] = user.get(f"{site.internal_url}/jobs")
        answers["unknown path"] = user.get(f"{base}/nothing/here")
        answers["refused cancel"] = user.post(f"{site.internal_url}/jobs/{world.job_id}/cancel")
        answers["user at the external API"] = user.get(f"{site.external_url}/rules/changes")
    with httpx.Client(verify=net.parties["p1"].client.ssl_context(), timeout=30) as client:
        answers["registry"] = client.get(f"{net.registry.url}/parties")
    assert answers["/internal/ui/jobs"].status_code == 200
    assert answers["/internal/ui/style.css"].headers["content-type"].startswith("text/css")
    for name, response in answers.items():
        assert response.status_code < 500, (name, response.text)
        policy = {
            directive.split()[0]: directive.split()[1:]
            for directive in response.headers["content-security-policy"].split(";")
        }
        assert policy["default-src"] == ["'none'"], name
        assert policy["frame-ancestors"] == ["'none'"], name
        assert policy["form-action"] == ["'self'"] and policy["base-uri"] == ["'none'"], name
        assert policy["style-src"] == ["'self'"], name  # no inline style or script anywhere
        assert policy["img-src"] == ["'self'"] and "script-src" not in policy, name
        assert response.headers["x-frame-options"] == "DENY", name
        assert response.headers["referrer-policy"] == "same-origin", name
        assert response.headers["x-content-type-options"] == "nosniff", name


def test_dashboard_pages_hold_no_inline_style_or_script(world: World) -> None:
    """The pages render under their policy: styles come from the served stylesheet only."""
    site = world.site
    with httpx.Client(verify=site.party.user.ssl_context(), timeout=30) as user:
        page = user.get(f"{site.internal_url}/ui/jobs/{world.job_id}").text
    assert '<link rel="stylesheet" href="/internal/ui/style.css">' in page
    assert not re.search(r"<style|<script|\sstyle=|\son[a-z]+=", page, re.I)
