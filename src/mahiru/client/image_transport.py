"""An HTTP/1.1 transport for image downloads that reads the body a MiB at a time.

httpx hands a response body on one TLS record (16 KiB) at a time, and parses,
copies and times out each record in three layers (httpx, httpcore, h11): for
an image of hundreds of MB that costs as much CPU as receiving it. This
transport makes the same request on a connection of its own, with the same
TLS context (our certificate; the server's checked against the network's CA
and its host name), a timeout on every connect, send and receive, and reads
the body with `recv_into` into one buffer, handed on a MiB at a time. It
reads what HTTP/1.1 allows a server to answer: a status line, headers, and a
body with Content-Length, chunked, or ended by closing. One request per
connection, closed with the response. Failures are httpx's transport errors,
so a caller retries and resumes exactly as with httpx's own transport.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from collections.abc import Iterator
from typing import NoReturn

import httpx

#: The size of the pieces a body is handed on in.
BODY_PIECE = 1024 * 1024
#: Bounds on a response's head (status line and headers), and on one line of a chunked body.
MAX_HEAD = 64 * 1024
MAX_LINE = 4 * 1024
_RECEIVE = 64 * 1024

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9][0-9])(?: (.*))?")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n\0]*?)[ \t]*")
_DIGITS = re.compile(rb"[0-9]{1,19}")
_UNSAFE = re.compile(rb"[\r\n\0]")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")


class ImageTransport(httpx.BaseTransport):
    """Sends each request on a new connection and reads the answer's body in large pieces.

    `ssl_context` is the context for `https` URLs (None: plain `http`
    only), used as httpx's own transport uses it: the server's name is sent
    and checked. The timeouts are the ones httpx hands each request.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None) -> None:
        self._ssl_context = ssl_context

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` and read the answer's head; the body is read as it is iterated."""
        head = _request_head(request)
        timeouts = request.extensions.get("timeout", {})
        sock = self._connect(request, timeouts.get("connect"))
        try:
            with _failures(request, httpx.WriteTimeout, httpx.WriteError):
                sock.settimeout(timeouts.get("write"))
                sock.sendall(head)
            sock.settimeout(timeouts.get("read"))
            connection = _Connection(sock, request)
            with _failures(request, httpx.ReadTimeout, httpx.ReadError):
                status, reason, headers = connection.head()
            body = _body(connection, status, headers, request.method)
        except BaseException:
            sock.close()
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=_Body(connection, body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    def _connect(self, request: httpx.Request, timeout: float | None) -> socket.socket:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"cannot fetch {url}", request=request)
        tls = url.scheme == "https"
        if tls and self._ssl_context is None:
            raise httpx.UnsupportedProtocol(f"no TLS context to fetch {url}", request=request)
        port = url.port or (443 if tls else 80)
        with _failures(request, httpx.ConnectTimeout, httpx.ConnectError):
            sock = socket.create_connection((url.host, port), timeout=timeout)
            if not tls or self._ssl_context is None:
                return sock
            try:
                return self._ssl_context.wrap_socket(sock, server_hostname=url.host)
            except BaseException:
                sock.close()
                raise


@contextlib.contextmanager
def _failures(
    request: httpx.Request,
    timeout: type[httpx.TimeoutException],
    failure: type[httpx.NetworkError],
) -> Iterator[None]:
    """Socket and TLS failures as httpx's errors (the original kept as their cause)."""
    try:
        yield
    except TimeoutError as error:
        raise timeout(f"timed out: {error}", request=request) from error
    except OSError as error:  # ssl.SSLError included: a refused certificate, a broken record
        raise failure(f"{type(error).__name__}: {error}", request=request) from error


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers; the connection closes after the answer.

    Downloads send no body, so a request with one is refused, as is a line
    break or NUL in the target or a header (which would forge another one).
    """
    if request.read() or request.headers.get("transfer-encoding"):
        raise httpx.LocalProtocolError("the image transport sends no request body", request=request)
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines += [
        b"%s: %s" % (name, value)
        for name, value in request.headers.raw
        if name.lower() != b"connection"
    ]
    lines.append(b"Connection: close")
    if any(_UNSAFE.search(line) for line in lines):
        raise httpx.LocalProtocolError("a line break or NUL in the request", request=request)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class _Connection:
    """A connected socket and what was received on it but not taken yet."""

    def __init__(self, sock: socket.socket, request: httpx.Request) -> None:
        self.sock = sock
        self.request = request
        self._pending = bytearray()

    def fail(self, message: str) -> NoReturn:
        """Raise the error for an answer that breaks HTTP/1.1."""
        raise httpx.RemoteProtocolError(message, request=self.request)

    def head(self) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """The status, reason and headers of the answer, after any informational (1xx) ones."""
        while True:
            lines = self.until(b"\r\n\r\n", MAX_HEAD, "answer's head").split(b"\r\n")
            match = _STATUS_LINE.fullmatch(lines[0])
            if match is None:
                self.fail(f"the server answered {lines[0][:80]!r}, not an HTTP/1.1 status line")
            headers = []
            for line in lines[1:]:
                header = _HEADER.fullmatch(line)
                if header is None:
                    self.fail(f"the server sent a malformed header line {line[:80]!r}")
                headers.append((header[1], header[2]))
            status = int(match[1])
            if not 100 <= status < 200 or status == 101:
                return status, match[2] or b"", headers

    def until(self, separator: bytes, limit: int, what: str) -> bytes:
        """The bytes before the next `separator` (which is taken too), at most `limit` of them."""
        start = 0
        while (end := self._pending.find(separator, start)) < 0:
            if len(self._pending) > limit:
                self.fail(f"the server's {what} is longer than {limit} bytes")
            start = max(len(self._pending) - len(separator) + 1, 0)
            received = self.sock.recv(_RECEIVE)
            if not received:
                self.fail(f"the server closed the connection in the {what}")
            self._pending += received
        if end > limit:
            self.fail(f"the server's {what} is longer than {limit} bytes")
        taken = bytes(self._pending[:end])
        del self._pending[: end + len(separator)]
        return taken

    def fill(self, view: memoryview) -> int:
        """Fill `view` from what is pending, then from the socket; returns less if it closed."""
        filled = min(len(self._pending), len(view))
        if filled:
            view[:filled] = self._pending[:filled]
            del self._pending[:filled]
        receive_into = self.sock.recv_into
        while filled < len(view):
            received = receive_into(view[filled:])
            if not received:
                break
            filled += received
        return filled


def _body(
    connection: _Connection, status: int, headers: list[tuple[bytes, bytes]], method: str
) -> Iterator[bytes]:
    """The pieces of the answer's body, as its headers say it is framed."""
    if method == "HEAD" or status in (204, 304):
        return iter(())
    encodings = [value for name, value in headers if name.lower() == b"transfer-encoding"]
    lengths = {value for name, value in headers if name.lower() == b"content-length"}
    if encodings:
        if [coding.strip().lower() for coding in b",".join(encodings).split(b",")] != [b"chunked"]:
            connection.fail(f"the server sent a body in transfer coding {encodings!r}")
        return _chunked(connection)
    if not lengths:
        return _until_closed(connection)
    length = lengths.pop()
    if lengths or _DIGITS.fullmatch(length) is None:
        connection.fail(f"the server sent an unusable Content-Length {[length, *lengths]!r}")
    return _sized(connection, int(length))


def _sized(connection: _Connection, length: int) -> Iterator[bytes]:
    """A body of `length` bytes; one that ends early is handed on as far as it came, then fails."""
    buffer = memoryview(bytearray(min(BODY_PIECE, length)))
    left = length
    while left:
        want = min(len(buffer), left)
        got = connection.fill(buffer[:want])
        left -= got
        if got:
            yield bytes(buffer[:got])
        if got < want:
            connection.fail(
                f"the server closed the connection after {length - left} of {length} bytes"
            )


def _chunked(connection: _Connection) -> Iterator[bytes]:
    """A chunked body, its chunks gathered into pieces of BODY_PIECE."""
    buffer = memoryview(bytearray(BODY_PIECE))
    filled = 0
    while size := _chunk_size(connection):
        while size:
            want = min(len(buffer) - filled, size)
            got = connection.fill(buffer[filled : filled + want])
            filled, size = filled + got, size - got
            if got < want:
                yield bytes(buffer[:filled])
                connection.fail("the server closed the connection inside a chunk")
            if filled == len(buffer):
                yield bytes(buffer)
                filled = 0
        if connection.until(b"\r\n", MAX_LINE, "chunk's end"):
            connection.fail("the server sent more bytes in a chunk than it announced")
    trailer = MAX_HEAD
    while line := connection.until(b"\r\n", trailer, "trailer"):
        trailer -= len(line)  # trailers carry nothing a download uses: skipped, within bounds
    if filled:
        yield bytes(buffer[:filled])


def _chunk_size(connection: _Connection) -> int:
    line = connection.until(b"\r\n", MAX_LINE, "chunk size")
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        connection.fail(f"the server sent a malformed chunk size {line[:80]!r}")
    return int(match[1], 16)


def _until_closed(connection: _Connection) -> Iterator[bytes]:
    """A body that ends when the server closes the connection."""
    buffer = memoryview(bytearray(BODY_PIECE))
    while got := connection.fill(buffer):
        yield bytes(buffer[:got])
        if got < len(buffer):
            return


class _Body(httpx.SyncByteStream):
    """An answer's body as httpx takes it, failures as httpx's errors; closing it closes the
    connection."""

    def __init__(self, connection: _Connection, pieces: Iterator[bytes]) -> None:
        self._connection = connection
        self._pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        with _failures(self._connection.request, httpx.ReadTimeout, httpx.ReadError):
            yield from self._pieces

    def close(self) -> None:
        self._connection.sock.close()
