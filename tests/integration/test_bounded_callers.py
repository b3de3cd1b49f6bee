"""Callers are bounded: slow heads and bodies are shed at their deadlines, busy or flooding
callers are turned away, and refusals cost the audit log a bounded number of bytes.

Every test serves real sites over mutual TLS on loopback, with short limits
configured for the test, and waits for conditions within bounded times.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.sites import Network, SiteServer, network

from mahiru.client.http import CLIENT_HEADER, TlsIdentity
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import AssetId
from mahiru.server import MAX_HEAD_BYTES
from mahiru.services.site.refusals import MAX_RECORD_BYTES
from mahiru.storage import AuditLog, AuditQuery, create_database

pytestmark = pytest.mark.integration

#: The deadlines the sites under test keep (short, so that the tests take seconds).
HEAD_SECONDS = 2.0
IDLE_SECONDS = 1.0
MIN_RATE = 200
#: How long a test waits for a slow connection to be shed, at most.
SHED_WAIT = HEAD_SECONDS + IDLE_SECONDS + 10.0


def _limited(site: SiteServer, **limits: Any) -> None:
    """Restart `site` holding its callers to `limits` (short deadlines by default)."""
    fields: dict[str, Any] = {
        "head_timeout_seconds": HEAD_SECONDS,
        "body_idle_timeout_seconds": IDLE_SECONDS,
        "body_min_bytes_per_second": MIN_RATE,
        **limits,
    }
    site.stop()
    callers = site.config.callers.model_copy(update=fields)
    site.config = site.config.model_copy(update={"callers": callers})
    site.start()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    """Two registered sites; p1's keeps short deadlines."""
    with network(tmp_path, sqlite_urls(tmp_path), ("p1", "p2")) as net:
        net.replicate_all()
        _limited(net.sites["p1"])
        yield net


def _port(site: SiteServer) -> int:
    return site.port


async def _connect(
    port: int, identity: TlsIdentity, opening: asyncio.Semaphore
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection; a few at a time, and again if a handshake is cut under the load."""
    for attempt in range(5):
        async with opening:
            try:
                return await asyncio.open_connection(
                    "127.0.0.1", port, ssl=identity.ssl_context(), server_hostname="127.0.0.1"
                )
            except (OSError, ssl.SSLError):
                if attempt == 4:
                    raise
    raise AssertionError("unreachable")


async def _hold(
    port: int,
    identity: TlsIdentity,
    start: bytes,
    piece: bytes,
    every: float,
    opening: asyncio.Semaphore,
) -> bytes:
    """Open a connection, send `start`, then `piece` every `every` s; what came back until EOF.

    Raises TimeoutError if the server still holds the connection after SHED_WAIT.
    """
    reader, writer = await _connect(port, identity, opening)

    async def trickle() -> None:
        try:
            writer.write(start)
            await writer.drain()
            while True:
                await asyncio.sleep(every)
                writer.write(piece)
                await writer.drain()
        except (OSError, ssl.SSLError):
            return  # the server cut the connection

    sending = asyncio.create_task(trickle())
    try:
        return await asyncio.wait_for(_read_all(reader), timeout=SHED_WAIT)
    finally:
        sending.cancel()
        writer.close()


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    received = b""
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except (OSError, ssl.SSLError):
        pass  # aborted: what arrived before is the answer
    return received


def _head(method: str, path: str, **headers: str) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_a_slowloris_of_200_connections_is_shed_while_an_honest_client_is_answered(
    net: Network,
) -> None:
    """Stalled TLS handshakes, half-sent heads (on both APIs, and behind a pipelined request)
    and trickled bodies (JSON and image uploads) are all closed by their deadlines; an honest
    client is answered meanwhile."""
    site, peer = net.sites["p1"], net.sites["p2"]
    user = site.party.admin
    asset = "asset:p1.org:big:p1.org:site"
    with site.admin() as admin:
        admin.create_asset(Asset(AssetId.parse(asset), AssetKind.DATA))
    variants: list[tuple[str, TlsIdentity, bytes, bytes]] = [
        # A head that never ends, one header line at a time (beats an idle timer).
        ("head", peer.identity, _head("GET", "/external/rules/changes?since=0"), b"X-a: b\r\n"),
        ("head", user, _head("GET", "/internal/assets"), b"X-a: b\r\n"),
        # A whole request, then the next one's head begun behind it and never ended.
        (
            "pipelined",
            user,
            _head("GET", "/internal/assets") + b"\r\n" + _head("GET", "/internal/assets"),
            b"X-a: b\r\n",
        ),
        # Bodies trickled a byte at a time, far below the floor.
        (
            "body",
            user,
            _head(
                "POST",
                "/internal/rules",
                **{"Content-Type": "application/json", "Content-Length": "100000"},
            )
            + b"\r\n{",
            b" ",
        ),
        (
            "body",
            user,
            _head(
                "PUT",
                f"/internal/assets/{asset}/image",
                **{
                    "X-Mahiru-Digest": "sha256:" + "0" * 64,
                    "Content-Length": "100000000",
                    CLIENT_HEADER: "1",  # as our clients send it: past the cross-site check
                },
            )
            + b"\r\n",
            b"x",
        ),
    ]
    done = threading.Event()
    honest: list[int] = []

    def ask_honestly() -> None:
        with httpx.Client(verify=user.ssl_context(), timeout=30) as client:
            while not done.is_set() and len(honest) < 500:
                honest.append(client.get(f"{site.internal_url}/assets").status_code)

    async def stall_handshake() -> bytes:
        # TCP only, then silence: the TLS handshake never starts.
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(site))
        try:
            return await asyncio.wait_for(_read_all(reader), timeout=SHED_WAIT)
        finally:
            writer.close()

    async def attack() -> list[bytes]:
        opening = asyncio.Semaphore(10)
        stalled = [stall_handshake() for _ in range(20)]
        holds = [
            _hold(_port(site), identity, start, piece, 0.3, opening)
            for n in range(200)
            for _, identity, start, piece in [variants[n % len(variants)]]
        ]
        answers = await asyncio.gather(*holds, *stalled)
        assert answers[len(holds) :] == [b""] * len(stalled)
        return answers[: len(holds)]

    asker = threading.Thread(target=ask_honestly)
    asker.start()
    try:
        answers = asyncio.run(attack())
    finally:
        done.set()
        asker.join(timeout=60)
    assert honest and set(honest) == {200}
    for n, answer in enumerate(answers):
        kind = variants[n % len(variants)][0]
        if kind == "head":
            assert answer == b"", answer[:200]
        elif kind == "pipelined":  # the first request answered, the second cut
            assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1
        else:
            status, _, rest = answer.partition(b"\r\n")
            assert status == b"HTTP/1.1 408 Request Timeout", answer[:200]
            body = json.loads(rest.partition(b"\r\n\r\n")[2])
            assert body["error"]["type"] == "InvalidInput"
            assert "request body" in body["error"]["message"]


def test_an_honest_upload_longer_than_every_deadline_passes(net: Network, tmp_path: Path) -> None:
    """An image streamed in chunks with short pauses, for longer than the head and idle
    deadlines together, is stored: the body deadline is a rate and an idle gap, not a total."""
    site = net.sites["p1"]
    asset = AssetId.parse("asset:p1.org:steady:p1.org:site")
    image = write_image(tmp_path / "steady.tar", size=250_000).read_bytes()
    with site.admin() as admin:
        admin.create_asset(Asset(asset, AssetKind.DATA))
    pieces = [image[i : i + 32_768] for i in range(0, len(image), 32_768)]
    assert len(pieces) * 0.45 > HEAD_SECONDS + IDLE_SECONDS

    def steadily() -> Iterator[bytes]:
        for piece in pieces:
            yield piece
            time.sleep(0.45)  # pacing an honest but slow link, not waiting for anything

    with httpx.Client(verify=site.party.admin.ssl_context(), timeout=30) as client:
        response = client.put(
            f"{site.internal_url}/assets/{asset}/image",
            content=steadily(),
            headers={
                "X-Mahiru-Digest": "sha256:" + hashlib.sha256(image).hexdigest(),
                CLIENT_HEADER: "1",
            },
        )
    assert response.status_code == 200, response.text


async def _asgi_status(app: Any, method: str, path: str, pem: str | None) -> int:
    """The status `app` answers a bodiless request with, called as the TLS server calls it
    (httpx's own checks of a 60 kB URL would take longer than the site's answer)."""
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 443),
        "extensions": {"tls": {"client_cert_chain": [pem]}} if pem else {},
    }
    await app(scope, receive, send)
    return status


def _refusal_records(site: SiteServer) -> list[dict[str, Any]]:
    """Every refusal record of `site` (read from its database, the site stopped or not)."""
    with create_database(site.config.database_url) as database:
        log = AuditLog(database)
        records, before = [], None
        while True:
            page = log.page(AuditQuery(kind=AuditKind.REFUSAL, before=before), 500)
            records += [record.to_dict() for record in page.records]
            if page.next is None:
                return records
            before = page.next


def test_ten_thousand_refused_requests_add_a_bounded_number_of_records_and_bytes(
    net: Network,
) -> None:
    """10,000 refusals (over TLS and in-process; both APIs; three identities and none; 60 kB
    paths) add at most 2 records per identity and reason, each under MAX_RECORD_BYTES, and
    their counts add up to every refusal once the site stops."""
    site, peer = net.sites["p1"], net.sites["p2"]
    # The rate limit is another test's subject; and the whole run is one audit interval
    # however slow a loaded machine makes it (a second interval may add a record per pair).
    _limited(site, refused_burst=10**6, refusal_audit_interval_seconds=86_400)
    before = len(_refusal_records(site))
    sent = 0
    callers = [
        (peer.identity, "/internal/assets"),
        (site.party.user, "/external/rules/changes"),
        (net.parties["p2"].client, "/internal/jobs"),
    ]
    for identity, path in callers:  # over real TLS, on one kept-alive connection each
        with httpx.Client(verify=identity.ssl_context(), timeout=30) as client:
            for n in range(100):
                long = f"{path}/{'x' * 10_000}{n}"
                assert client.get(f"https://127.0.0.1:{site.port}{long}").status_code == 403
                sent += 1

    async def in_process() -> int:
        count = 0
        for identity, path in [*callers, (None, "/internal/assets")]:
            pem = None if identity is None else identity.cert.read_text()
            for n in range((10_000 - sent) // 4):
                method = ("GET", "POST", "DELETE")[n % 3]
                status = await _asgi_status(site.app, method, f"{path}/{'y' * 60_000}{n}", pem)
                assert status in (401, 403), status
                count += 1
        return count

    sent += asyncio.run(in_process())
    assert sent == 10_000
    site.stop()
    added = _refusal_records(site)[: len(_refusal_records(site)) - before]
    pairs = {(r["details"].get("fingerprint", r["actor"]), r["details"]["reason"]) for r in added}
    assert len(pairs) == 4  # three certificates and none, each refused for one reason
    assert len(added) <= 2 * len(pairs)  # the first of each interval, and one summary
    assert all(len(json.dumps(record)) <= MAX_RECORD_BYTES for record in added)
    assert sum(record["details"]["count"] for record in added) == sent
    assert all(len(record["details"]["path"]) <= 256 for record in added)


@pytest.fixture
def net3(tmp_path: Path) -> Iterator[Network]:
    """Three registered sites; p1's allows few refusals and few external requests per caller."""
    with network(tmp_path, sqlite_urls(tmp_path)) as net:
        net.replicate_all()
        _limited(
            net.sites["p1"],
            refused_burst=5,
            refused_per_second=0.001,
            external_burst=10,
            external_per_second=0.001,
        )
        yield net


def _is_rate_limited(response: httpx.Response) -> bool:
    if response.status_code != 429:
        return False
    error = response.json()["error"]
    assert set(error) == {"type", "message", "details"} and error["type"] == "RateLimited"
    assert int(response.headers["Retry-After"]) >= 1
    return True


def test_a_flooding_identity_is_answered_429_while_others_are_unaffected(net3: Network) -> None:
    """Refused callers beyond their burst get 429 with Retry-After, on either API; a site
    flooding the external API gets 429; other identities keep their own answers."""
    site, peer, other = net3.sites["p1"], net3.sites["p2"], net3.sites["p3"]
    for identity, path in (
        (peer.identity, "/internal/assets"),
        (site.party.user, "/external/rules/changes?since=0"),
    ):
        with httpx.Client(verify=identity.ssl_context(), timeout=30) as flood:
            answers = [flood.get(f"https://127.0.0.1:{site.port}{path}") for _ in range(8)]
        assert [a.status_code for a in answers[:5]] == [403] * 5
        assert all(_is_rate_limited(a) for a in answers[5:])
    # Another refused identity is refused for what it is, not for the flood.
    with httpx.Client(verify=other.identity.ssl_context(), timeout=30) as client:
        assert client.get(f"{site.internal_url}/assets").status_code == 403
    # A site calling the external API more often than its rate.
    with httpx.Client(verify=peer.identity.ssl_context(), timeout=30) as flood:
        answers = [flood.get(f"{site.external_url}/rules/changes?since=0") for _ in range(12)]
    assert [a.status_code for a in answers[:10]] == [200] * 10
    assert all(_is_rate_limited(a) for a in answers[10:])
    with httpx.Client(verify=other.identity.ssl_context(), timeout=30) as client:
        assert client.get(f"{site.external_url}/rules/changes?since=0").status_code == 200
    with site.client(site.party.user) as user:  # the internal API is not the external's limit
        user.list_assets()


def test_requests_beyond_the_concurrency_limit_are_answered_503_until_others_finish(
    net: Network,
) -> None:
    """With two requests held open by slow bodies, a third is answered 503 (Retry-After, the
    one error shape) at once; once the slow ones are shed, it is answered again."""
    site = net.sites["p1"]
    _limited(site, max_concurrent_requests=2)
    user = site.party.admin
    start = (
        _head(
            "POST",
            "/internal/rules",
            **{"Content-Type": "application/json", "Content-Length": "1000"},
        )
        + b"\r\n{"
    )
    url = f"{site.internal_url}/assets"

    async def crowd() -> list[bytes] | None:
        opening = asyncio.Semaphore(2)
        holding = [
            asyncio.create_task(_hold(_port(site), user, start, b" ", 0.3, opening))
            for _ in range(2)
        ]
        async with httpx.AsyncClient(verify=user.ssl_context(), timeout=30) as client:
            for _ in range(100):  # until both slow requests are being handled
                response = await client.get(url)
                if response.status_code == 503:
                    break
                if all(task.done() for task in holding):
                    # On a loaded machine both were shed before a probe came: again.
                    await asyncio.gather(*holding)
                    return None
                await asyncio.sleep(0.05)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["type"] == "Unavailable"
            assert response.headers["Retry-After"] == "1"
            answers = await asyncio.gather(*holding)
            # A shed request's handler ends just after its connection closes: its slot is
            # free within moments, not necessarily before the caller's next request.
            for _ in range(40):
                if (status := (await client.get(url)).status_code) == 200:
                    break
                await asyncio.sleep(0.05)
            assert status == 200
        return answers

    answers: list[bytes] | None = None
    for _ in range(5):
        answers = asyncio.run(crowd())
        if answers is None:
            continue
        # A slow request that arrived while the probe was handled was itself the one too
        # many; then nothing was held to its deadline, and the crowd gathers again.
        assert all(answer.startswith((b"HTTP/1.1 408", b"HTTP/1.1 503")) for answer in answers)
        if any(answer.startswith(b"HTTP/1.1 408") for answer in answers):
            break
    assert answers is not None, "no probe came while both slow requests were held"
    assert any(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers


def test_connections_beyond_the_limit_are_closed_at_once(net: Network) -> None:
    """With three connections open, a fourth is closed unanswered, even with a whole request;
    once the idle three are shed at the head deadline, a new one is answered."""
    site = net.sites["p1"]
    _limited(site, max_connections=3)
    user = site.party.admin
    request = _head("GET", "/internal/assets") + b"\r\n"

    async def crowd() -> tuple[bytes, bytes]:
        opening = asyncio.Semaphore(3)
        idle = [await _connect(_port(site), user, opening) for _ in range(3)]
        reader, writer = await _connect(_port(site), user, opening)
        writer.write(request)
        turned_away = await asyncio.wait_for(_read_all(reader), timeout=SHED_WAIT)
        writer.close()
        for idle_reader, idle_writer in idle:  # shed at the head deadline
            assert await asyncio.wait_for(_read_all(idle_reader), timeout=SHED_WAIT) == b""
            idle_writer.close()
        reader, writer = await _connect(_port(site), user, opening)
        writer.write(request)
        answered = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout=SHED_WAIT)
        writer.close()
        return turned_away, answered

    turned_away, answered = asyncio.run(crowd())
    assert turned_away == b""
    assert answered.startswith(b"HTTP/1.1 200")


def test_a_request_head_over_the_size_limit_is_answered_431_and_the_connection_closed(
    net: Network,
) -> None:
    """A head over MAX_HEAD_BYTES is refused with 431 in the one error shape, whether it
    ends or not, and the connection closes; a head just under it is answered."""
    site = net.sites["p1"]
    user = site.party.admin
    padding = "x" * (MAX_HEAD_BYTES + 100)
    ended = _head("GET", "/internal/assets", **{"X-Pad": padding}) + b"\r\n"
    endless = _head("GET", "/internal/assets", **{"X-Pad": padding})
    fits = _head("GET", "/internal/assets", **{"X-Pad": "x" * (MAX_HEAD_BYTES - 200)}) + b"\r\n"

    async def ask(request: bytes) -> bytes:
        reader, writer = await _connect(_port(site), user, asyncio.Semaphore(1))
        writer.write(request)
        try:
            return await asyncio.wait_for(_read_all(reader), timeout=SHED_WAIT)
        finally:
            writer.close()

    for request in (ended, endless):
        answer = asyncio.run(ask(request))
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:200]
        body = json.loads(rest.partition(b"\r\n\r\n")[2])
        assert body["error"]["type"] == "InvalidInput"
        assert f"larger than {MAX_HEAD_BYTES} bytes" in body["error"]["message"]
    answer = asyncio.run(ask(fits + _head("GET", "/internal/assets", Connection="close") + b"\r\n"))
    assert answer.startswith(b"HTTP/1.1 200")
