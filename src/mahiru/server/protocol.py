"""The connection protocol of every server: uvicorn's httptools protocol, bounded.

It hands the app the verified client certificate (as `extensions.tls`, the shape
the ASGI TLS extension describes) and holds each connection to `CallerLimits`:
its TLS handshake and request head must be complete within the head deadline
and the head under MAX_HEAD_BYTES, a body may pause no longer than the idle
timeout between chunks and must keep up a minimum rate, and connections and
requests beyond their limits are turned away at once.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mahiru.api.errors import error_body
from mahiru.config import CallerLimits
from mahiru.server.refusals import SHED

#: The most bytes a request head may have (h11's default, the limit before httptools).
MAX_HEAD_BYTES = 16 * 1024
#: How long a connection refused for its head is read (and dropped) before it closes.
REFUSAL_LINGER_SECONDS = 1.0
#: A first body write up to this size goes out with the response head in one write.
JOINED_BODY_BYTES = 64 * 1024

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _ConnectionApp:
    """The app as one connection calls it: with its client certificate, within the limits."""

    def __init__(self, app: ASGIApp, pem: str | None, busy: Callable[[], bool]) -> None:
        self.app = app
        self.pem = pem
        self.busy = busy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.busy():
                SHED.note("too many requests at once")
                await _send_error(send, 503, "Unavailable", "the service is busy; retry shortly")
                return
            if self.pem is not None:
                extensions = dict(scope.get("extensions") or {})
                extensions["tls"] = {"client_cert_chain": [self.pem]}
                scope = {**scope, "extensions": extensions}
        await self.app(scope, receive, send)


async def _send_error(
    send: Send, status: int, type_name: str, message: str, *, close: bool = False
) -> None:
    data = json.dumps(error_body(type_name, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


_HEAD_TOO_LARGE = f"request head larger than {MAX_HEAD_BYTES} bytes"


async def _head_too_large(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a request whose head is over MAX_HEAD_BYTES; the connection closes."""
    await _send_error(send, 431, "InvalidInput", _HEAD_TOO_LARGE, close=True)


class HeadWithBody(asyncio.Transport):
    """One response's view of its connection: the head is held until the body's first
    bytes, and both are written at once, one TLS record and one system call instead of two
    (a cheap answer's largest cost after the app). A head with no body soon after goes out
    at the loop's next turn, or when the response closes the connection."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._first = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._first:
            self._first = False
            self._held = bytes(data)
            self._loop.call_soon(self._release)
            return
        held, self._held = self._held, None
        if held is not None and len(data) <= JOINED_BODY_BYTES:
            data = held + data
        elif held is not None:
            self._transport.write(held)
        self._transport.write(data)

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class ClientCertificateProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, passing the verified client certificate to the app
    and holding each connection to `limits` (see `bounded_protocol`).

    The parser's callbacks say where a connection is: a head is awaited from the
    connection's start, and from the first byte of each later request, until
    its head is complete; a body is read from then until its message is complete.
    """

    limits: ClassVar[CallerLimits] = CallerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Made when the connection is accepted, before any TLS handshake: the
        # head deadline counts from here.
        self._phase_start = self.loop.time()
        self._awaiting_head = True
        # The head's bytes as parsed (URL and headers), and as received while it is awaited.
        self._head_bytes = self._head_received = 0
        # A pipelined head begun while the previous answer is still being made:
        # its deadline runs from that answer's end.
        self._head_waits_for_answer = False
        self._in_body = False
        self._refused = False
        self._last_body = self._phase_start
        self._body_bytes = 0
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pem: str | None = None
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                pem = ssl.DER_cert_to_PEM_cert(der)
        self.app = _ConnectionApp(self.config.loaded_app, pem, self._busy)
        if len(self.connections) > self.limits.max_connections:
            SHED.note("too many connections")
            transport.close()
            return
        self._arm(self._phase_start + self.limits.head_timeout_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head:
            self._head_received += len(data)
        super().data_received(data)
        if self._closing():
            return
        if self._awaiting_head:
            if self._head_received > MAX_HEAD_BYTES:
                self._refuse_head()
            elif self._watch is None and not self._head_waits_for_answer:
                self._arm(self._phase_start + self.limits.head_timeout_seconds)
        elif self._in_body and self._watch is None:
            self._arm(self.loop.time() + self._body_check_interval())

    # The parser's callbacks, called from within `data_received`: a head or body
    # completed there needs no timer.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._awaiting_head:
            return  # the connection's first request: its deadline runs from the accept
        # The first bytes of the next request on a kept-alive or pipelining connection.
        self._awaiting_head, self._head_bytes, self._head_received = True, 0, 0
        self._phase_start = self.loop.time()
        cycle = self.cycle
        self._head_waits_for_answer = cycle is not None and not cycle.response_complete

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = self._head_waits_for_answer = False
        self._disarm()
        self._in_body = True
        self._phase_start = self._last_body = self.loop.time()
        self._body_bytes = 0
        if self._head_bytes <= MAX_HEAD_BYTES:
            super().on_headers_complete()
        else:
            SHED.note("request head too large")
            app, self.app = self.app, _head_too_large
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        if self.cycle is not None and self.cycle.scope is self.scope:  # a cycle was begun
            self.cycle.transport = HeadWithBody(self.transport, self.loop)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        self._last_body = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._head_waits_for_answer and not self._closing():
            # Part of the next head came with the last request (pipelined): its
            # deadline runs from now, not from when more of it arrives.
            self._head_waits_for_answer = False
            self._phase_start = self.loop.time()
            self._arm(self._phase_start + self.limits.head_timeout_seconds)

    def _refuse_head(self) -> None:
        """Answer 431 to a head still growing past MAX_HEAD_BYTES; close a moment later.

        What the caller still sends meanwhile is read and dropped: closing with it
        unread would reset the connection, and the caller might never read the answer.
        """
        SHED.note("request head too large")
        self._refused = True
        self._write_error(b"431 Request Header Fields Too Large", _HEAD_TOO_LARGE)
        self._watch = self.loop.call_later(REFUSAL_LINGER_SECONDS, self.transport.close)

    def _closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _busy(self) -> bool:
        # The asking request's own task is already counted.
        return len(self.tasks) > self.limits.max_concurrent_requests

    def _body_check_interval(self) -> float:
        return max(0.05, self.limits.body_idle_timeout_seconds / 4)

    def _arm(self, at: float) -> None:
        self._disarm()
        self._watch = self.loop.call_at(at, self._check)

    def _disarm(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _check(self) -> None:
        """Cut the connection if its head or body is late; otherwise look again later."""
        self._watch = None
        if self.transport.is_closing():
            return
        limits, now = self.limits, self.loop.time()
        if self._awaiting_head:
            if not self._head_waits_for_answer:
                self._cut(f"request head not complete within {limits.head_timeout_seconds} s")
            return
        if not self._in_body:
            return
        if self.flow.read_paused:
            # Reading waits for the app, not for the caller: start measuring afresh.
            self._phase_start = self._last_body = now
            self._body_bytes = 0
        grace = limits.body_idle_timeout_seconds
        elapsed = now - self._phase_start
        if now - self._last_body >= grace:
            self._cut(f"no request body received for {grace} s")
        elif elapsed > grace and self._body_bytes < limits.body_min_bytes_per_second * (
            elapsed - grace
        ):
            self._cut(
                f"request body slower than {limits.body_min_bytes_per_second} bytes per second"
            )
        else:
            self._arm(now + self._body_check_interval())

    def _cut(self, reason: str) -> None:
        """Answer 408 if a request was begun and nothing answered yet; close the connection."""
        SHED.note(reason)
        cycle = self.cycle
        answered = cycle is not None and (cycle.response_started or cycle.disconnected)
        if cycle is not None:
            cycle.disconnected = True  # whatever the app still sends is dropped
            cycle.message_event.set()
        if self._awaiting_head or answered:
            self.transport.abort()
            return
        self._answer_and_close(b"408 Request Timeout", reason)

    def _answer_and_close(self, status: bytes, reason: str) -> None:
        """Answer `status` with `reason` in the one error shape, and close the connection."""
        self._write_error(status, reason)
        self.transport.close()

    def _write_error(self, status: bytes, reason: str) -> None:
        self._disarm()
        data = json.dumps(error_body("InvalidInput", reason)).encode()
        self.transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (status, len(data), data)
        )


def bounded_protocol(limits: CallerLimits) -> type[ClientCertificateProtocol]:
    """The connection protocol holding every connection to `limits`."""
    return type("BoundedProtocol", (ClientCertificateProtocol,), {"limits": limits})
