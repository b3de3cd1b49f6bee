"""Serving an app over TLS with client certificates required (the local default).

Uvicorn does not hand the verified client certificate to the app, so a small
protocol subclass adds it to the ASGI scope as `extensions.tls`, the shape the
ASGI TLS extension describes.

A client certificate refused during the handshake never reaches the app, and
Python's TLS layer says nothing of it; the server's TLS objects log each such
refusal with OpenSSL's reason, at most once a minute per reason (with the
count of those not logged), so that an operator sees why callers fail.

The same protocol bounds what one connection may hold (`CallerLimits`):
its TLS handshake and request head must be complete within the head
deadline, a body may pause no longer than the idle timeout between chunks
and must keep up a minimum rate, and connections and requests beyond their
limits are turned away at once. Gunicorn's workers use it too
(mahiru.asgi_worker), so both ways of serving are bounded alike.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from mahiru.api.errors import error_body
from mahiru.config import CallerLimits

logger = logging.getLogger("mahiru.tls")

#: Seconds between two log lines about refused certificates with the same reason.
REFUSAL_LOG_INTERVAL = 60.0

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _RefusalLog:
    """Logs `message` for each reason, at most once per interval and reason."""

    def __init__(
        self,
        interval: float = REFUSAL_LOG_INTERVAL,
        message: str = "refused a client certificate during the TLS handshake",
    ) -> None:
        self._interval = interval
        self._message = message
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def note(self, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self._interval:
                self._quiet[reason] = self._quiet.get(reason, 0) + 1
                return
            self._last[reason] = now
            unlogged = self._quiet.pop(reason, 0)
        logger.warning(self._message, extra={"reason": reason, "unlogged_since_last": unlogged})


REFUSALS = _RefusalLog()
#: Connections cut for holding the server too long (head, body) or beyond its limits.
SHED = _RefusalLog(message="closed a connection that held the server too long")


class _HandshakeLoggingSSLObject(ssl.SSLObject):
    """The server's TLS object: a failed check of the client's certificate is logged."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except ssl.SSLCertVerificationError as error:
            REFUSALS.note(f"certificate not accepted: {error.verify_message}")
            raise
        except ssl.SSLWantReadError:
            raise
        except ssl.SSLError as error:
            if error.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
                REFUSALS.note("no client certificate")
            raise


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


async def _send_error(send: Send, status: int, type_name: str, message: str) -> None:
    data = json.dumps(error_body(type_name, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class ClientCertificateProtocol(H11Protocol):
    """uvicorn's h11 protocol, passing the verified client certificate to the app
    and holding each connection to `limits` (see `bounded_protocol`)."""

    limits: ClassVar[CallerLimits] = CallerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Made when the connection is accepted, before any TLS handshake: the
        # head deadline counts from here.
        self._phase_start = self.loop.time()
        self._awaiting_head = True
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
        now = self.loop.time()
        state = self.conn.their_state
        if state is h11.IDLE and not self._awaiting_head:
            # The first bytes of the next request on a kept-alive connection.
            self._awaiting_head, self._phase_start = True, now
            self._arm(now + self.limits.head_timeout_seconds)
        elif state is h11.SEND_BODY:
            self._body_bytes += len(data)
            self._last_body = now
        super().data_received(data)
        if self._awaiting_head and self.conn.their_state is not h11.IDLE:
            self._awaiting_head = False
            self._disarm()
            if self.conn.their_state is h11.SEND_BODY:
                self._phase_start = self._last_body = now
                self._body_bytes = 0
                self._arm(now + self._body_check_interval())

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self._awaiting_head:
            return
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            # Part of the next head came with the last request (pipelined): its
            # deadline runs from now, not from when more of it arrives.
            self._awaiting_head, self._phase_start = True, self.loop.time()
            self._arm(self._phase_start + self.limits.head_timeout_seconds)

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
            if self.conn.their_state is h11.IDLE:
                self._cut(f"request head not complete within {limits.head_timeout_seconds} s")
            return
        if self.conn.their_state is not h11.SEND_BODY:
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
        data = json.dumps(error_body("InvalidInput", reason)).encode()
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data)
        )
        self.transport.close()


def bounded_protocol(limits: CallerLimits) -> type[ClientCertificateProtocol]:
    """The connection protocol holding every connection to `limits`."""
    return type("BoundedProtocol", (ClientCertificateProtocol,), {"limits": limits})


class _BoundedServer(uvicorn.Server):
    """A uvicorn server whose TLS handshakes must finish within the head deadline."""

    def __init__(self, config: uvicorn.Config, handshake_timeout: float) -> None:
        super().__init__(config)
        self._handshake_timeout = handshake_timeout

    async def startup(self, sockets: list[Any] | None = None) -> None:
        if self.config.ssl is None:
            await super().startup(sockets)
            return
        # uvicorn offers no handshake timeout (asyncio's default is 60 s, and as
        # long again for a peer that never answers the closing handshake): its
        # listeners are made through this loop's create_server, given both here.
        loop = asyncio.get_running_loop()
        loop.create_server = functools.partial(  # type: ignore[method-assign]
            loop.create_server,
            ssl_handshake_timeout=self._handshake_timeout,
            ssl_shutdown_timeout=self._handshake_timeout,
        )
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server


def make_server(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    certfile: Path | None,
    keyfile: Path | None,
    client_ca_files: list[Path],
    log_level: str = "warning",
    limits: CallerLimits | None = None,
) -> uvicorn.Server:
    """A uvicorn server for `app`; with `certfile`, TLS requiring client certificates.

    `client_ca_files` are the CAs whose certificates may connect (the network
    CA, plus the owner's user CA for a site). Without `certfile` the server
    speaks plain HTTP and expects a trusted proxy in front of it. Every
    connection is held to `limits` (the defaults of `CallerLimits` if None).
    """
    limits = limits or CallerLimits()
    ca_bundle: str | None = None
    if certfile is not None:
        ca_bundle = "".join(path.read_text() for path in client_ca_files)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=bounded_protocol(limits),
        loop="asyncio",
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if certfile else ssl.CERT_NONE,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=10,
    )
    if ca_bundle is not None:
        # uvicorn takes a CA file path; load the bundle into its SSL context instead.
        config.load()
        assert config.ssl is not None
        config.ssl.load_verify_locations(cadata=ca_bundle)
        config.ssl.sslobject_class = _HandshakeLoggingSSLObject
    return _BoundedServer(config, limits.head_timeout_seconds)
