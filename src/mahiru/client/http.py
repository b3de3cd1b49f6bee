"""Shared pieces of every Mahiru HTTP client: mutual TLS, timeouts, and error decoding.

Responses in the JSON error shape become the matching MahiruError, so a
client raises exactly what the server raised; connection problems become
Unavailable (retryable).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from mahiru.errors import (
    Conflict,
    Internal,
    InvalidInput,
    MahiruError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

_ERRORS: dict[str, type[MahiruError]] = {
    cls.type_name: cls
    for cls in (
        InvalidInput,
        NotFound,
        PermissionDenied,
        Unauthenticated,
        Conflict,
        Unavailable,
        Internal,
    )
}

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """The files a client needs for mutual TLS: its certificate and key, and the CA to trust."""

    cert: Path
    key: Path
    ca: Path

    def ssl_context(self) -> ssl.SSLContext:
        """A client context presenting our certificate and verifying the server against `ca`."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca))
            context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as error:
            raise InvalidInput(
                f"cannot load TLS files (cert {self.cert}, key {self.key}, CA {self.ca}): {error}"
            ) from None
        return context


def make_http_client(
    base_url: str,
    identity: TlsIdentity | None,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    headers: dict[str, str] | None = None,
) -> httpx.Client:
    """An httpx client for `base_url` with mutual TLS (or an injected transport for tests)."""
    verify: ssl.SSLContext | bool = identity.ssl_context() if identity is not None else True
    return httpx.Client(
        base_url=base_url,
        verify=verify,
        transport=transport,
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
    )


class ApiClient:
    """The shell every client of one API shares: its URL, connections, and closing them."""

    def __init__(
        self,
        url: str,
        identity: TlsIdentity | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url
        self._http = make_http_client(url, identity, transport=transport, timeout=timeout)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def error_from_response(response: httpx.Response) -> MahiruError:
    """The MahiruError a non-2xx response stands for."""
    try:
        body = response.json()
        error = body["error"]
        cls = _ERRORS.get(str(error.get("type")), Internal)
        return cls(str(error.get("message")), error.get("details"))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    if response.status_code in (502, 503, 504):
        return Unavailable(f"{response.request.url}: HTTP {response.status_code}")
    return Internal(
        f"{response.request.url}: unexpected HTTP {response.status_code}: {response.text[:200]}"
    )


def check(response: httpx.Response) -> httpx.Response:
    """Return `response` if it succeeded, else raise its MahiruError."""
    if response.is_success:
        return response
    response.read()
    raise error_from_response(response)


def request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send a request; connection failures and timeouts are Unavailable."""
    try:
        return check(client.request(method, url, **kwargs))
    except httpx.TransportError as error:
        where = f"{str(client.base_url).rstrip('/')}/{url.lstrip('/')}"
        raise Unavailable(f"{where}: {type(error).__name__}: {error}") from None
