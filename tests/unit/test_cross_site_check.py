"""The browser boundary's rules on their own: whose Origin counts as ours, and what marks our
clients' requests (the integration tests try every route over real TLS)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from mahiru.api.middleware import CrossSiteRefusal, origin_of
from mahiru.client.http import CLIENT_HEADER, make_http_client

#: Where the browsers reach a site behind a proxy that passes the app `Host` without the port.
PUBLIC = "https://site1.example.org:8443/internal"


async def _changed(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"changed"})


def _post(path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[int, bytes]:
    """POST to an app behind a TLS-terminating proxy (plain HTTP, Host without the public port),
    straight through ASGI: the status and body of the answer."""
    app = CrossSiteRefusal(_changed, origins=[PUBLIC], forms=("/ui/",))
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "headers": [
            (b"host", b"site1.example.org"),
            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
        ],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://site1.example.org:8443", True),  # the configured address
        ("http://site1.example.org", True),  # the request's own scheme and Host
        ("https://SITE1.example.org:8443", True),  # host names know no case
        ("https://site1.example.org", False),  # another port
        ("https://site1.example.org.evil.example:8443", False),
        ("null", False),
    ],
)
def test_an_origin_counts_as_ours_only_if_configured_or_the_request_s_own(
    origin: str, allowed: bool
) -> None:
    """Behind a proxy, the dashboard's forms work from the address browsers use, and only there."""
    status, body = _post("/ui/cancel", {"origin": origin}, b"token=x")
    assert (status, body == b"changed") == ((200, True) if allowed else (403, False))


def test_a_form_route_takes_a_form_but_an_api_route_wants_json_or_the_client_mark() -> None:
    """The dashboard's forms cannot carry a header; every other route must have one."""
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert _post("/ui/cancel", form, b"token=x")[0] == 200
    assert _post("/api", form, b"token=x")[0] == 403
    assert _post("/api", {CLIENT_HEADER: "1"})[0] == 200
    assert _post("/api", {"content-type": "application/json; charset=utf-8"}, b"{}")[0] == 200
    status, body = _post("/api")
    assert status == 403 and json.loads(body)["error"]["type"] == "PermissionDenied"


def test_origins_are_written_as_browsers_write_them() -> None:
    """Scheme and host in lower case, the default port left out, the path dropped."""
    assert origin_of("HTTPS://Site1.Example.org:443/internal") == "https://site1.example.org"
    assert origin_of("http://127.0.0.1:80/x") == "http://127.0.0.1"
    assert origin_of("https://127.0.0.1:8443/internal") == "https://127.0.0.1:8443"


def test_every_request_of_our_clients_is_marked() -> None:
    """Whatever headers a caller adds, the client mark goes along."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(answer)
    with make_http_client("https://site", None, transport=transport, headers={"x-a": "b"}) as http:
        http.post("/jobs/1/cancel")
        http.put("/assets/a/image", content=b"tar", headers={"content-type": "application/x-tar"})
    assert [request.headers.get(CLIENT_HEADER) for request in seen] == ["1", "1"]
