"""Image downloads read their answers themselves (client/image_transport.py), over real TLS.

A scripted server on loopback answers each connection with bytes a test
writes by hand, so that cut, stalled, malformed and refused answers can be
sent on purpose.
"""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.manual_clock import ManualClock

from mahiru import pki
from mahiru.client.http import CLIENT_HEADER, TlsIdentity, make_http_client
from mahiru.client.image_transport import BODY_PIECE
from mahiru.client.site import PeerClient
from mahiru.errors import Internal, MahiruError, NotFound, PermissionDenied, Unavailable
from mahiru.model.identifiers import AssetId

pytestmark = pytest.mark.integration

SITE = "site:p2.example.org:site"
ASSET = AssetId.parse("asset:p1.example.org:data:p1.example.org:site")
DIGEST = "ab" * 32

#: Answers one connection, given its socket after the request's head was read from it.
Answer = Callable[[ssl.SSLSocket], None]


@dataclass
class Certificates:
    """The files of a network CA, a client site, and servers: trusted, foreign, misnamed."""

    client: TlsIdentity
    server: tuple[Path, Path]
    foreign: tuple[Path, Path]
    misnamed: tuple[Path, Path]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    out = tmp_path_factory.mktemp("pki")

    def save(name: str, certified: pki.CertifiedKey) -> tuple[Path, Path]:
        pair = out / f"{name}.crt", out / f"{name}.key"
        pki.save_certified_key(*pair, certified)
        return pair

    ca = pki.create_network_ca()
    ca_cert, _ = save("ca", ca)
    cert, key = save("client", pki.issue_site_certificate(ca, SITE))
    server = pki.issue_site_certificate(ca, "site:p1.example.org:site")
    foreign = pki.issue_site_certificate(pki.create_network_ca(), "site:p1.example.org:site")
    misnamed = pki.issue_site_certificate(
        ca, "site:p1.example.org:site", dns_names=("elsewhere.example.org",), ip_addresses=()
    )
    return Certificates(
        TlsIdentity(cert, key, ca_cert),
        save("server", server),
        save("foreign", foreign),
        save("misnamed", misnamed),
    )


@dataclass
class Served:
    """What the scripted server saw: the requests' heads and the client certificates."""

    url: str
    heads: list[bytes] = field(default_factory=list)
    client_certs: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[Exception] = field(default_factory=list)


@contextmanager
def scripted(
    certs: Certificates, *answers: Answer, server: tuple[Path, Path] | None = None
) -> Iterator[Served]:
    """A mutual-TLS server answering its connections in turn with `answers`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*(server or certs.server))
    context.load_verify_locations(certs.client.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    served = Served(f"https://localhost:{listener.getsockname()[1]}")

    def run() -> None:
        for answer in answers:
            try:
                plain, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            try:
                with context.wrap_socket(plain, server_side=True) as tls:
                    served.client_certs.append(tls.getpeercert() or {})
                    head = bytearray()
                    while b"\r\n\r\n" not in head and (received := tls.recv(4096)):
                        head += received
                    served.heads.append(bytes(head))
                    answer(tls)
            except (ssl.SSLError, OSError) as error:
                served.refusals.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        listener.close()
        thread.join(10)


def sends(*parts: bytes) -> Answer:
    """An answer that sends `parts` and closes the connection."""
    return lambda tls: tls.sendall(b"".join(parts))


def stalls(*parts: bytes) -> Answer:
    """An answer that sends `parts`, then nothing more until the client hangs up."""

    def answer(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"".join(parts))
        tls.settimeout(10)
        tls.recv(1)

    return answer


def head(status: str = "200 OK", *headers: str) -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status}", *headers]) + "\r\n\r\n").encode()


def image_head(length: int, *headers: str, status: str = "200 OK") -> bytes:
    return head(status, f"Content-Length: {length}", f"X-Mahiru-Digest: sha256:{DIGEST}", *headers)


def client(url: str, identity: TlsIdentity, read: float = 10.0) -> httpx.Client:
    return make_http_client(url, identity, timeout=httpx.Timeout(read, connect=10.0), images=True)


def pieces(url: str, identity: TlsIdentity, read: float = 10.0) -> list[bytes]:
    """The body of GET `url`/image, as the transport hands it on."""
    with client(url, identity, read) as http, http.stream("GET", "/image") as response:
        return list(response.iter_raw())


def data(size: int) -> bytes:
    return bytes(range(251)) * (size // 251) + bytes(size % 251)


def test_a_body_arrives_in_pieces_of_a_mib_over_mutual_tls(certs: Certificates) -> None:
    """The body comes whole, a MiB at a time; the server saw our site's certificate, the
    request line, the client header, and that the connection closes after the answer."""
    body = data(2 * BODY_PIECE + 12345)
    with scripted(certs, sends(image_head(len(body)), body)) as served:
        got = pieces(served.url, certs.client)
    assert b"".join(got) == body
    assert [len(piece) for piece in got] == [BODY_PIECE, BODY_PIECE, 12345]
    subject = dict(item[0] for item in served.client_certs[0]["subject"])
    assert subject["commonName"] == SITE
    request_line, *header_lines = served.heads[0].decode().split("\r\n")
    assert request_line == "GET /image HTTP/1.1"
    assert f"{CLIENT_HEADER}: 1" in header_lines
    assert "Connection: close" in header_lines


def test_a_chunked_body_is_put_together(certs: Certificates) -> None:
    """Chunks of any size (with extensions, then trailers) come out as the body, in pieces
    of at most a MiB."""
    body = data(BODY_PIECE + 70000)
    cuts = [0, 1, 5000, 5000, BODY_PIECE - 3, len(body)]
    chunks = b"".join(
        b"%x;note=x\r\n%s\r\n" % (end - start, body[start:end])
        for start, end in itertools.pairwise(cuts)
        if end > start
    )
    answer = sends(head("200 OK", "Transfer-Encoding: chunked"), chunks, b"0\r\nX-T: 1\r\n\r\n")
    with scripted(certs, answer) as served:
        got = pieces(served.url, certs.client)
    assert b"".join(got) == body
    assert max(len(piece) for piece in got) == BODY_PIECE


def test_a_body_without_a_length_ends_when_the_connection_closes(certs: Certificates) -> None:
    """With neither Content-Length nor chunks, the body is what came before the close."""
    body = data(BODY_PIECE + 1)
    with scripted(certs, sends(head(), body)) as served:
        assert b"".join(pieces(served.url, certs.client)) == body


def test_a_body_cut_short_is_handed_on_as_far_as_it_came_then_fails(certs: Certificates) -> None:
    """A connection closed before Content-Length bytes: what came is handed on, then a
    protocol error (a transport error, so a download resumes)."""
    got: list[bytes] = []
    with (
        scripted(certs, sends(image_head(1000), data(600))) as served,
        client(served.url, certs.client) as http,
        http.stream("GET", "/image") as response,
        pytest.raises(httpx.RemoteProtocolError, match="after 600 of 1000 bytes"),
    ):
        for piece in response.iter_raw():
            got.append(piece)
    assert got == [data(600)]


def test_a_chunked_body_cut_short_fails(certs: Certificates) -> None:
    """A connection closed inside a chunk is a protocol error, not the end of the body."""
    answer = sends(head("200 OK", "Transfer-Encoding: chunked"), b"400\r\n", b"x" * 10)
    with scripted(certs, answer) as served, pytest.raises(httpx.RemoteProtocolError):
        pieces(served.url, certs.client)


def test_a_download_cut_short_resumes_with_a_range(certs: Certificates) -> None:
    """Through a peer client: the first connection drops half way; the rest is asked for with
    a Range on the image's digest and the image comes out whole."""
    body = data(3 * BODY_PIECE // 2)
    half = len(body) // 2
    rest = image_head(len(body) - half, f"Content-Range: bytes {half}-{len(body) - 1}/{len(body)}")
    answers = (
        sends(image_head(len(body)), body[:half]),
        sends(rest.replace(b"200 OK", b"206 Partial Content"), body[half:]),
    )
    with (
        scripted(certs, *answers) as served,
        PeerClient(served.url, certs.client, clock=ManualClock()) as peer,
        peer.fetch_image(ASSET) as image,
    ):
        assert b"".join(image.chunks) == body
        assert image.digest == DIGEST
    second = served.heads[1].decode().split("\r\n")
    assert f"Range: bytes={half}-" in second
    assert f'If-Range: "sha256:{DIGEST}"' in second


@pytest.mark.parametrize(
    "lengths",
    [["12x"], ["-1"], [" "], ["10", "11"], ["99999999999999999999"]],
    ids=["not-a-number", "negative", "blank", "two-lengths", "too-long"],
)
def test_an_unusable_length_is_refused(certs: Certificates, lengths: list[str]) -> None:
    """A Content-Length that is not one whole number is a protocol error, before any byte."""
    fields = [f"Content-Length: {length}" for length in lengths]
    with (
        scripted(certs, sends(head("200 OK", *fields), data(20))) as served,
        pytest.raises(httpx.RemoteProtocolError, match="Content-Length"),
    ):
        pieces(served.url, certs.client)


def test_bytes_past_the_length_are_not_taken(certs: Certificates) -> None:
    """The body ends at Content-Length, whatever else the server sends after it."""
    with scripted(certs, sends(image_head(10), data(20))) as served:
        assert b"".join(pieces(served.url, certs.client)) == data(20)[:10]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"x" * (70 * 1024),
        b"HTTP/1.1 200 O",
    ],
    ids=[
        "http-2",
        "status",
        "header",
        "folded",
        "coding",
        "chunk-size",
        "chunk-longer",
        "head-too-long",
        "cut-head",
    ],
)
def test_a_malformed_answer_is_a_protocol_error(certs: Certificates, answer: bytes) -> None:
    """What breaks HTTP/1.1 in the head or the framing is refused as such."""
    with scripted(certs, sends(answer)) as served, pytest.raises(httpx.RemoteProtocolError):
        pieces(served.url, certs.client)


def test_an_informational_answer_before_the_real_one_is_skipped(certs: Certificates) -> None:
    """A 100 Continue before the answer is read past."""
    with scripted(certs, sends(head("100 Continue"), image_head(3), b"abc")) as served:
        assert pieces(served.url, certs.client) == [b"abc"]


@pytest.mark.parametrize("sent", [b"", image_head(1000) + b"x" * 10], ids=["head", "body"])
def test_a_stalled_server_times_out(certs: Certificates, sent: bytes) -> None:
    """A server that stops sending, before its head or inside the body, fails the read
    once the read timeout passes."""
    with scripted(certs, stalls(sent)) as served, pytest.raises(httpx.ReadTimeout):
        pieces(served.url, certs.client, read=0.3)


def test_a_download_from_a_stalled_server_is_unavailable(certs: Certificates) -> None:
    """Through a peer client, each attempt times out, and the download ends as Unavailable
    after its attempts."""
    clock = ManualClock()
    stalled = [stalls(image_head(1000)) for _ in range(4)]
    with (
        scripted(certs, *stalled) as served,
        PeerClient(served.url, certs.client, timeout=0.3, clock=clock) as peer,
        pytest.raises(Unavailable, match="after 4 attempts"),
        peer.fetch_image(ASSET) as image,
    ):
        b"".join(image.chunks)
    assert len(served.heads) == 4


@pytest.mark.parametrize("server", ["foreign", "misnamed"])
def test_a_server_certificate_not_for_this_network_and_name_is_refused(
    certs: Certificates, server: str
) -> None:
    """A server whose certificate another CA issued, or that names another host, is refused
    in the handshake, before anything is sent."""
    pair = certs.foreign if server == "foreign" else certs.misnamed
    with (
        scripted(certs, sends(image_head(3), b"abc"), server=pair) as served,
        pytest.raises(httpx.ConnectError) as raised,
    ):
        pieces(served.url, certs.client)
    assert isinstance(raised.value.__cause__, ssl.SSLCertVerificationError)
    assert served.heads == []


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message, "details": {}}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "raised"),
    [
        ("403 Forbidden", _error("PermissionDenied", "no MayAccess"), PermissionDenied),
        ("404 Not Found", _error("NotFound", "no such asset"), NotFound),
        ("503 Service Unavailable", b"<html>down</html>", Unavailable),
        ("500 Internal Server Error", b"<html>oops</html>", Internal),
    ],
)
def test_an_error_answer_becomes_the_error_the_client_raises(
    certs: Certificates, status: str, body: bytes, raised: type[MahiruError]
) -> None:
    """Through a peer client, an error status and its body map to the same MahiruError
    as every other call of the client."""
    answer = sends(head(status, f"Content-Length: {len(body)}"), body)
    with (
        scripted(certs, answer) as served,
        PeerClient(served.url, certs.client, clock=ManualClock()) as peer,
        pytest.raises(raised) as error,
        peer.fetch_image(ASSET),
    ):
        pass
    if body.startswith(b"{"):
        assert error.value.message == json.loads(body)["error"]["message"]


@pytest.mark.parametrize(
    "send",
    [
        lambda http: http.get("/image", headers={"X-Note": "a\r\nX-Forged: 1"}),
        lambda http: http.post("/image", content=b"a body"),
    ],
    ids=["line-break-in-header", "request-body"],
)
def test_a_request_the_transport_cannot_send_faithfully_is_refused_before_connecting(
    certs: Certificates, send: Callable[[httpx.Client], object]
) -> None:
    """A header that would forge another one, or a request body, is refused; nothing is
    sent."""
    with (
        scripted(certs) as served,
        client(served.url, certs.client) as http,
        pytest.raises(httpx.LocalProtocolError),
    ):
        send(http)
    assert served.client_certs == []
