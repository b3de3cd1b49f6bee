"""Request ids, access logs, body size limits and the browser boundary for every app."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from starlette.datastructures import URL
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mahiru.api.errors import error_body
from mahiru.api.metrics import ServiceMetrics
from mahiru.api.poll_log import PollSummary
from mahiru.client.http import CLIENT_HEADER

logger = logging.getLogger("mahiru.access")

REQUEST_ID_HEADER = "X-Request-Id"
#: The most characters of a request's path an access log line holds.
LOGGED_PATH = 256


class AccessLog:
    """Gives each request an id and logs one JSON line with caller and outcome.

    Handlers record the caller they authenticated in `request.state.caller`.
    With `metrics`, each request is counted there too, by its route template.
    A request to one of the `polls` routes (templates) answered well is logged
    at debug and summarised once an hour (`poll_log.py`).

    Pure ASGI, not Starlette's BaseHTTPMiddleware: that one runs the rest of
    the app in a task of its own and streams the answer back through a queue,
    which cost more than the cheap routes themselves (docs/performance.md).
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics | None = None,
        polls: tuple[str, ...] = (),
        summary: PollSummary | None = None,
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._polls = frozenset(polls)
        self._summary = summary if summary is not None else PollSummary()
        self._ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope) or self._ids.new()
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (_REQUEST_ID, request_id.encode())
        start = time.perf_counter()
        answer: dict[str, Any] = {}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["seconds"] = time.perf_counter() - start
                answer["status"] = message["status"]
                headers = []
                for name, value in message.get("headers", ()):
                    lowered = name.lower()
                    if lowered == b"content-length":
                        answer["length"] = value
                    if lowered != _REQUEST_ID:
                        headers.append((name, value))
                headers.append(id_header)
                message = {**message, "headers": headers}
                # Logged at the head, before any of the answer leaves: a caller that has it
                # finds it logged, and an image download cut short is counted all the same.
                self._record(scope, request_id, answer)
            await send(message)

        await self.app(scope, receive, send_with_id)

    def _record(self, scope: Scope, request_id: str, answer: dict[str, Any]) -> None:
        """Count and log one answered request."""
        status: int = answer["status"]
        seconds: float = answer["seconds"]
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        caller = str(scope.get("state", {}).get("caller") or "anonymous")
        if self._metrics is not None:
            length: bytes = answer.get("length", b"")
            sent = int(length) if length.isdigit() else None
            self._metrics.request(route, scope["method"], status, seconds, sent)
        level = logging.INFO
        if route in self._polls and status < 400:
            level = logging.DEBUG
            summary = self._summary.answered(caller)
            if summary is not None:
                logger.info("polls answered", extra={"route": route, **summary})
        if not logger.isEnabledFor(level):
            return
        logger.log(
            level,
            "request",
            extra={
                "request_id": request_id,
                "method": scope["method"],
                # Cut: a caller's path must not make the log as long as it likes.
                "path": URL(scope=scope).path[:LOGGED_PATH],
                "status": status,
                "caller": caller,
                "outcome": "ok" if status < 400 else "error",
                "duration_ms": round(seconds * 1000, 2),
            },
        )


_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()


class RequestIds:
    """New request ids, unique across processes: 8 random bytes drawn once per process,
    then a counter (32 hex digits in all, as a UUID's). A random id per request cost a
    system call each on the hot path."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._counter = itertools.count()

    def new(self) -> str:
        """The next id."""
        if self._pid != os.getpid():  # first use, or a forked worker: a prefix of its own
            self._pid, self._prefix = os.getpid(), os.urandom(8).hex()
            self._counter = itertools.count()
        return f"{self._prefix}{next(self._counter):016x}"


def _request_id(scope: Scope) -> str:
    """The caller's own request id, if it is short and printable; else empty."""
    for name, value in scope["headers"]:
        if name.lower() == _REQUEST_ID:
            incoming = value.decode("latin-1")
            return incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
    return ""


#: What a `RequestGate` asks of each request: an answer that refuses it, or None to let it in.
GateCheck = Callable[[Request], Awaitable[Response | None]]


class RequestGate:
    """Lets a request through to the app only if `check` has no answer of its own for it.

    For authentication: `check` may keep what it learnt on `request.state`,
    which the routes and the access log read. Pure ASGI for the reason given
    at `AccessLog`.
    """

    def __init__(self, app: ASGIApp, check: GateCheck) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = await self.check(Request(scope, receive))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Rejects request bodies over `limit` bytes with 413, for paths outside `unlimited`.

    Streaming uploads (asset images) are exempted by prefix; they are limited
    by their own handlers.
    """

    def __init__(self, app: ASGIApp, limit: int, unlimited: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.unlimited = unlimited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._reject(send)
                return
        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            # Over the limit, the 413 goes out at once and the app is told the client
            # left; raising here instead would reach FastAPI wrapped in an exception
            # group and come out as a vague 400.
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > self.limit and not started:
                    refused = True
                    await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the app answers is dropped
            started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    def _exempt(self, path: str) -> bool:
        return any(path.startswith(prefix) and path.endswith("/image") for prefix in self.unlimited)

    async def _reject(self, send: Send) -> None:
        body = error_body("InvalidInput", f"request body larger than {self.limit} bytes")
        await _send_json(send, 413, body)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    import json

    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


#: Methods that change nothing; every other one must come from the app's own pages or clients.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Said by a browser of a request another origin made it send (`same-site`: another port or
#: subdomain of the same site, still another origin).
_FOREIGN_FETCH = frozenset({b"cross-site", b"same-site"})
_DEFAULT_PORTS = {"https": "443", "http": "80"}


def origin_of(url: str) -> str:
    """The origin of `url` as a browser writes it in `Origin`: scheme://host[:port], the
    default port left out."""
    parts = urlsplit(url.strip().lower())
    return _origin(parts.scheme, parts.netloc)


def _origin(scheme: str, host: str) -> str:
    host = host.lower().rsplit("@", 1)[-1]
    if host.endswith(f":{_DEFAULT_PORTS.get(scheme, '')}"):
        host = host.rsplit(":", 1)[0]
    return f"{scheme}://{host}"


class CrossSiteRefusal:
    """Refuses with 403 every state-changing request a browser sends for another web site.

    A browser that holds a user's certificate presents it to us whichever page
    asks, so a page elsewhere could post a form here. What a browser adds and
    a page cannot forge tells such requests apart: `Sec-Fetch-Site` and
    `Origin`. Our clients send neither, but send `X-Mahiru-Client` or a JSON
    body, which a page elsewhere cannot make a browser send without a CORS
    preflight that these apps never allow. So a request with a method outside
    SAFE_METHODS must
    - not be marked `cross-site` or `same-site` by the browser;
    - carry no `Origin`, or the app's own: the request's scheme and Host, or
      one of `origins` (the addresses browsers use, when a proxy stands between);
    - outside the `forms` prefixes (the dashboard's HTML forms, which carry a
      per-user token instead), carry `X-Mahiru-Client` or `Content-Type:
      application/json`.
    It runs after authentication and before routing: a refused request reaches
    no route.
    """

    def __init__(
        self, app: ASGIApp, origins: Iterable[str] = (), forms: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.origins = frozenset(origin_of(url) for url in origins)
        self.forms = forms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            reason = self._refusal(scope)
            if reason is not None:
                message = (
                    "a request that changes something must come from this service's own pages"
                    f" or from a Mahiru client: {reason}"
                )
                await _send_json(send, 403, error_body("PermissionDenied", message))
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None."""
        headers: dict[bytes, list[bytes]] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), []).append(value)
        for fetch in headers.get(b"sec-fetch-site", []):
            if fetch.strip().lower() in _FOREIGN_FETCH:
                return f"the browser sent it for another site (Sec-Fetch-Site: {_shown(fetch)})"
        hosts = headers.get(b"host", [])
        own = {*self.origins, *(_origin(scope["scheme"], h.decode("latin-1")) for h in hosts[:1])}
        for origin in headers.get(b"origin", []):
            if origin.decode("latin-1").strip().lower() not in own:
                return f"it was sent from a page of another origin ({_shown(origin)})"
        if any(scope["path"].startswith(prefix) for prefix in self.forms):
            return None
        if headers.get(CLIENT_HEADER.lower().encode()):
            return None
        for content_type in headers.get(b"content-type", [])[:1]:
            if content_type.split(b";", 1)[0].strip().lower() == b"application/json":
                return None
        return f"it is neither JSON (Content-Type: application/json) nor marked {CLIENT_HEADER}"


def _shown(value: bytes) -> str:
    """A header value a caller sent, cut short, for an error message."""
    text = value.decode("latin-1")
    return repr(text if len(text) <= 80 else f"{text[:80]}…")


#: What a browser may do with any page of these apps: show it only on its own (never framed),
#: load only its stylesheet and its own images (a result's PNG, JPEG or GIF on the dashboard's
#: review pages; never SVG), run no script, send forms only to it, and never tell another site
#: where it was. `same-origin`, not `no-referrer`: under `no-referrer` a browser sends
#: `Origin: null` with the dashboard's own forms, which CrossSiteRefusal must refuse.
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        b" frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
)
_SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


class SecurityHeaders:
    """Sends SECURITY_HEADERS with every response, errors and refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k not in _SECURITY_NAMES]
                message = {**message, "headers": [*kept, *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_middleware(
    app: FastAPI,
    *,
    body_limit: int,
    unlimited: tuple[str, ...] = (),
    metrics: ServiceMetrics | None = None,
    origins: Iterable[str] = (),
    forms: tuple[str, ...] = (),
    polls: tuple[str, ...] = (),
) -> None:
    """Add the browser boundary, the access log (counting requests in `metrics`, the
    routine `polls` routes summarised) and the body size limit to `app`.

    Cross-site requests are refused innermost, after authentication (a caller
    without an identity still gets 401) and before routing; the security
    headers go on every response, the size limit's too.
    """
    # add_middleware wraps what is there; appending puts the check inside everything added so
    # far, authentication included.
    app.user_middleware.append(Middleware(CrossSiteRefusal, origins=tuple(origins), forms=forms))
    app.add_middleware(AccessLog, metrics=metrics, polls=polls)
    app.add_middleware(BodySizeLimit, limit=body_limit, unlimited=unlimited)
    app.add_middleware(SecurityHeaders)
