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
from tests.support.images import write_image
from tests.support.sites import Network, SiteServer, network

from mahiru.client.http import TlsIdentity
from mahiru.config import CallerLimits
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId

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
    site.config = site.config.model_copy(update={"callers": CallerLimits(**fields)})
    site.start()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    """Two registered sites; p1's keeps short deadlines."""
    with network(tmp_path, lambda name: f"sqlite:///{tmp_path / name}.db", ("p1", "p2")) as net:
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
    """Half-sent heads (on both APIs) and trickled bodies (JSON and image uploads) are all
    closed by their deadlines; an honest client keeps getting answers meanwhile."""
    site, peer = net.sites["p1"], net.sites["p2"]
    user = site.party.admin
    asset = "asset:p1.org:big:p1.org:site"
    with site.admin() as admin:
        admin.create_asset(Asset(AssetId.parse(asset), AssetKind.DATA))
    variants: list[tuple[str, TlsIdentity, bytes, bytes]] = [
        # A head that never ends, one header line at a time (beats an idle timer).
        ("head", peer.identity, _head("GET", "/external/rules/changes?since=0"), b"X-a: b\r\n"),
        ("head", user, _head("GET", "/internal/assets"), b"X-a: b\r\n"),
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
                **{"X-Mahiru-Digest": "sha256:" + "0" * 64, "Content-Length": "100000000"},
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

    async def attack() -> list[bytes]:
        opening = asyncio.Semaphore(10)
        holds = [
            _hold(_port(site), identity, start, piece, 0.3, opening)
            for n in range(200)
            for _, identity, start, piece in [variants[n % len(variants)]]
        ]
        return await asyncio.gather(*holds)

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
            headers={"X-Mahiru-Digest": "sha256:" + hashlib.sha256(image).hexdigest()},
        )
    assert response.status_code == 200, response.text
