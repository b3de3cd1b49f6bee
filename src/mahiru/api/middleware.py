"""Request ids, access logs and body size limits for every app."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mahiru.api.errors import error_body
from mahiru.api.metrics import ServiceMetrics

logger = logging.getLogger("mahiru.access")

REQUEST_ID_HEADER = "X-Request-Id"
#: The most characters of a request's path an access log line holds.
LOGGED_PATH = 256


class AccessLog(BaseHTTPMiddleware):
    """Gives each request an id and logs one JSON line with caller and outcome.

    Handlers record the caller they authenticated in `request.state.caller`.
    With `metrics`, each request is counted there too, by its route template.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics | None = None) -> None:
        super().__init__(app)
        self._metrics = metrics

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
        request.state.request_id = request_id or uuid.uuid4().hex
        start = time.perf_counter()
        response = await call_next(request)
        response.headers[REQUEST_ID_HEADER] = request.state.request_id
        seconds = time.perf_counter() - start
        if self._metrics is not None:
            route = getattr(request.scope.get("route"), "path", None) or "unmatched"
            length = response.headers.get("content-length", "")
            sent = int(length) if length.isdigit() else None
            self._metrics.request(route, request.method, response.status_code, seconds, sent)
        logger.info(
            "request",
            extra={
                "request_id": request.state.request_id,
                "method": request.method,
                # Cut: a caller's path must not make the log as long as it likes.
                "path": request.url.path[:LOGGED_PATH],
                "status": response.status_code,
                "caller": str(getattr(request.state, "caller", None) or "anonymous"),
                "outcome": "ok" if response.status_code < 400 else "error",
                "duration_ms": round(seconds * 1000, 2),
            },
        )
        return response


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


def install_middleware(
    app: FastAPI,
    *,
    body_limit: int,
    unlimited: tuple[str, ...] = (),
    metrics: ServiceMetrics | None = None,
) -> None:
    """Add the access log (counting requests in `metrics`) and the body size limit to `app`."""
    app.add_middleware(AccessLog, metrics=metrics)
    app.add_middleware(BodySizeLimit, limit=body_limit, unlimited=unlimited)
