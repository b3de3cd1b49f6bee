"""Shared pieces of every Mahiru HTTP client: mutual TLS, timeouts, and error decoding.

Responses in the JSON error shape become the matching MahiruError, so a
client raises exactly what the server raised; connection problems become
Unavailable (retryable).
"""

from __future__ import annotations

import errno
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from mahiru.client.image_transport import ImageTransport
from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import (
    AwaitingReview,
    Conflict,
    Internal,
    InvalidInput,
    MahiruError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ReleaseRejected,
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
        AwaitingReview,
        ReleaseRejected,
        Unavailable,
        RateLimited,
        Internal,
    )
}

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

#: Sent with every request of our clients. The apps take a request that changes something
#: only with this header or a JSON body: a page of another web site cannot make a browser
#: send either (docs/security.md, "Cross-site requests").
CLIENT_HEADER = "X-Mahiru-Client"


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
    images: bool = False,
) -> httpx.Client:
    """An httpx client for `base_url` with mutual TLS (or an injected transport for tests).

    Every request says it comes from a Mahiru client (CLIENT_HEADER). With
    `images` (and no injected transport), requests go through an
    `ImageTransport`, which reads large bodies a MiB at a time, with the
    same TLS context and timeouts.
    """
    verify: ssl.SSLContext | bool = identity.ssl_context() if identity is not None else True
    if images and transport is None:
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context()
        transport = ImageTransport(context)
    return httpx.Client(
        base_url=base_url,
        verify=verify,
        transport=transport,
        timeout=timeout,
        headers={CLIENT_HEADER: "1", **(headers or {})},
        follow_redirects=False,
    )


class ApiClient:
    """The shell every client of one API shares: its URL, connections, and closing them.

    `clock` is what pauses between retried downloads sleep on. Images are
    downloaded through a client of their own (`_images`, made at the first
    download), whose transport reads bodies a MiB at a time.
    """

    def __init__(
        self,
        url: str,
        identity: TlsIdentity | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.url = url
        self._http = make_http_client(url, identity, transport=transport, timeout=timeout)
        self._clock = clock
        self._identity = identity
        self._transport = transport
        self._timeout = timeout
        self._image_client: httpx.Client | None = None

    @property
    def _images(self) -> httpx.Client:
        """The client images are downloaded with (the injected transport's, if one was)."""
        if self._image_client is None:
            self._image_client = make_http_client(
                self.url,
                self._identity,
                transport=self._transport,
                timeout=self._timeout,
                images=True,
            )
        return self._image_client

    def close(self) -> None:
        """Close the connections."""
        self._http.close()
        if self._image_client is not None:
            self._image_client.close()

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


def unreachable(error: Exception, where: str) -> Unavailable:
    """The Unavailable a transport failure on the way to `where` (a URL) stands for.

    A refused connection is said in a sentence a person acts on: nothing
    listens at that address, so the service is not running (or the port is
    wrong); other failures keep their name and text.
    """
    if refused(error):
        parts = httpx.URL(where)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return Unavailable(
            f"nothing answers at {parts.host}:{port} \N{EM DASH} is the service running?"
            f" (connection refused: {where})"
        )
    return Unavailable(f"{where}: {type(error).__name__}: {error}")


def refused(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, is a refused connection."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or (
            isinstance(seen, OSError) and seen.errno == errno.ECONNREFUSED
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


#: Requests sent once more when the server drops the connection before answering.
_IDEMPOTENT = frozenset({"GET", "HEAD"})
#: Failures of a connection that was open (a kept-alive one the server closed, say a web
#: worker that was replaced), not of reaching the server or of waiting for it.
_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send a request; connection failures and timeouts are Unavailable.

    A read (GET, HEAD) whose connection is dropped before the answer is sent
    once more, on a new connection: the server may have closed a kept-alive
    connection as it was used (a web worker replaced, a restart). Nothing else
    is sent twice."""
    tries = 2 if method.upper() in _IDEMPOTENT else 1
    for tried in range(1, tries + 1):
        try:
            return check(client.request(method, url, **kwargs))
        except _DROPPED as error:
            if tried < tries:
                continue
            failure: httpx.TransportError = error
        except httpx.TransportError as error:
            failure = error
        break
    raise unreachable(failure, f"{str(client.base_url).rstrip('/')}/{url.lstrip('/')}") from None


#: Bounds on a JSON answer from a peer (who may be hostile): size, nesting and numbers.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_INTEGER = 2**63 - 1


def request_json(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    max_bytes: int = MAX_ANSWER_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    **kwargs: Any,
) -> Any:
    """Send a request and parse its JSON answer within bounds; InvalidInput if out of them.

    The body is read as it arrives and refused past `max_bytes`; nesting
    deeper than `max_depth`, integers beyond 64 bits, NaN and infinities are
    refused too, so a malformed answer is one clear error, never a crash.
    """
    where = f"{str(client.base_url).rstrip('/')}/{url.lstrip('/')}"
    try:
        with client.stream(method, url, **kwargs) as response:
            check(response)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise InvalidInput(f"{where}: the answer is larger than {max_bytes} bytes")
    except httpx.TransportError as error:
        raise unreachable(error, where) from None
    return parse_bounded_json(bytes(body), where, max_depth=max_depth)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_bounded_json(data: bytes, where: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from an untrusted source within the bounds of `request_json`."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidInput(f"{where}: the answer is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{where}: the answer is not JSON ({error})") from None
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > max_depth:
            raise InvalidInput(f"{where}: the answer is nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INTEGER:
            raise InvalidInput(f"{where}: the answer holds a number beyond 64 bits")
    return value
