"""Serving an app over TLS with client certificates required (the local default).

Uvicorn does not hand the verified client certificate to the app, so a small
protocol subclass adds it to the ASGI scope as `extensions.tls`, the shape the
ASGI TLS extension describes.

A client certificate refused during the handshake never reaches the app, and
Python's TLS layer says nothing of it; the server's TLS objects log each such
refusal with OpenSSL's reason, at most once a minute per reason (with the
count of those not logged), so that an operator sees why callers fail.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("mahiru.tls")

#: Seconds between two log lines about refused certificates with the same reason.
REFUSAL_LOG_INTERVAL = 60.0

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _RefusalLog:
    """Logs refused client certificates, at most once per interval and reason."""

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL) -> None:
        self._interval = interval
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
        logger.warning(
            "refused a client certificate during the TLS handshake",
            extra={"reason": reason, "unlogged_since_last": unlogged},
        )


REFUSALS = _RefusalLog()


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


class _WithClientCertificate:
    """Wraps the app for one connection, adding that connection's client certificate."""

    def __init__(self, app: ASGIApp, pem: str) -> None:
        self.app = app
        self.pem = pem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": [self.pem]}
            scope = {**scope, "extensions": extensions}
        await self.app(scope, receive, send)


class ClientCertificateProtocol(H11Protocol):
    """uvicorn's h11 protocol, passing the verified client certificate to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                self.app = _WithClientCertificate(
                    self.config.loaded_app, ssl.DER_cert_to_PEM_cert(der)
                )


def make_server(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    certfile: Path | None,
    keyfile: Path | None,
    client_ca_files: list[Path],
    log_level: str = "warning",
) -> uvicorn.Server:
    """A uvicorn server for `app`; with `certfile`, TLS requiring client certificates.

    `client_ca_files` are the CAs whose certificates may connect (the network
    CA, plus the owner's user CA for a site). Without `certfile` the server
    speaks plain HTTP and expects a trusted proxy in front of it.
    """
    ca_bundle: str | None = None
    if certfile is not None:
        ca_bundle = "".join(path.read_text() for path in client_ca_files)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=ClientCertificateProtocol,
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
    return uvicorn.Server(config)
