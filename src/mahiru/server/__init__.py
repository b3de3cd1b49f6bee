"""Serving an app over TLS with client certificates required (the local default).

Uvicorn does not hand the verified client certificate to the app, so its
httptools protocol is subclassed (`mahiru.server.protocol`) to add it to the
ASGI scope as `extensions.tls`, the shape the ASGI TLS extension describes.

A client certificate refused during the handshake never reaches the app, and
Python's TLS layer says nothing of it; the server's TLS objects log each such
refusal with OpenSSL's reason, at most once a minute per reason (with the
count of those not logged), so that an operator sees why callers fail.

The same protocol bounds what one connection may hold (`CallerLimits`):
its TLS handshake and request head must be complete within the head
deadline and the head under MAX_HEAD_BYTES, a body may pause no longer
than the idle timeout between chunks and must keep up a minimum rate, and
connections and requests beyond their limits are turned away at once.
Gunicorn's workers use it too (mahiru.asgi_worker), so both ways of serving
are bounded alike.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from pathlib import Path
from typing import Any

import uvicorn

from mahiru.config import CallerLimits
from mahiru.server.protocol import MAX_HEAD_BYTES, ASGIApp, bounded_protocol
from mahiru.server.refusals import REFUSALS

__all__ = ["MAX_HEAD_BYTES", "ASGIApp", "bounded_protocol", "make_server"]


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
