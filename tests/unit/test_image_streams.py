"""Images from a peer arrive as streams: announced first, resumed without repeats, checked on
the receiving side before anything is kept."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.support.streams import Dropping

from mahiru.client.jobs import PeerJobsClient
from mahiru.client.site import PeerClient
from mahiru.errors import Conflict, InvalidInput, NotFound
from mahiru.model.identifiers import AssetId, ResultId
from mahiru.services.images import receive_image
from mahiru.storage import BlobStore

ASSET = AssetId.parse("asset:p1.org:d:p1.org:s")
DATA = os.urandom(2_500_000)
DIGEST = hashlib.sha256(DATA).hexdigest()

Serve = Callable[[httpx.Request], httpx.Response]


def _peer(serve: Serve) -> PeerClient:
    return PeerClient("https://site.test/external", None, transport=httpx.MockTransport(serve))


def _whole(request: httpx.Request, asked: list[str | None], *, drop_first: bool) -> httpx.Response:
    """The whole image, whatever range was asked for (a site that ignores Range)."""
    asked.append(request.headers.get("range"))
    body = Dropping(DATA, 1_000_000) if drop_first and len(asked) == 1 else httpx.ByteStream(DATA)
    headers = {"X-Mahiru-Digest": f"sha256:{DIGEST}", "Content-Length": str(len(DATA))}
    return httpx.Response(200, headers=headers, stream=body)


def test_the_digest_and_size_are_announced_before_any_byte_is_read() -> None:
    """Opening makes the one request; the stream says what it will carry before it flows."""
    asked: list[str | None] = []
    with _peer(lambda r: _whole(r, asked, drop_first=False)).fetch_image(ASSET) as image:
        assert (image.digest, image.size) == (DIGEST, len(DATA))
        assert asked == [None]
        assert b"".join(image.chunks) == DATA
    assert asked == [None]


def test_bytes_sent_again_after_a_drop_are_passed_on_once(tmp_path: Path) -> None:
    """A site that answers the resuming Range request with the whole image again: the bytes
    already passed on are skipped, so the stream is the image exactly once."""
    asked: list[str | None] = []
    peer = _peer(lambda r: _whole(r, asked, drop_first=True))
    seen: list[int] = []
    with peer.fetch_image(ASSET, progress=lambda p, d, t: seen.append(d)) as image:
        streamed = b"".join(image.chunks)
    assert streamed == DATA
    assert asked == [None, "bytes=1000000-"]
    assert seen[-1] == len(DATA) and seen == sorted(seen)
    blobs = BlobStore(tmp_path / "blobs")
    peer = _peer(lambda r: _whole(r, asked, drop_first=False))
    assert receive_image(blobs, peer.fetch_image(ASSET), str(ASSET)) == (DIGEST, len(DATA))


def test_an_unusable_range_is_asked_for_whole_next_time() -> None:
    """A 206 that starts beyond what was received cannot be lined up: the next request asks
    for the whole image (no Range) and skips what was passed on."""
    asked: list[str | None] = []

    def serve(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("range"))
        headers = {"X-Mahiru-Digest": f"sha256:{DIGEST}"}
        if len(asked) == 1:
            return httpx.Response(200, headers=headers, stream=Dropping(DATA, 1_000_000))
        if len(asked) == 2:
            headers["Content-Range"] = f"bytes 2000000-{len(DATA) - 1}/{len(DATA)}"
            return httpx.Response(206, headers=headers, content=DATA[2_000_000:])
        return httpx.Response(200, headers=headers, content=DATA)

    with _peer(serve).fetch_image(ASSET) as image:
        assert b"".join(image.chunks) == DATA
    assert asked == [None, "bytes=1000000-", None]


def test_a_refusal_is_raised_on_opening_and_nothing_is_stored(tmp_path: Path) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"type": "NotFound", "message": "no such"}})

    blobs = BlobStore(tmp_path / "blobs")
    with pytest.raises(NotFound):
        receive_image(blobs, _peer(serve).fetch_image(ASSET), str(ASSET))
    with pytest.raises(NotFound), _peer(serve).fetch_image(ASSET):
        pass
    assert list(blobs.digests()) == []


def test_another_digest_than_expected_is_refused_before_the_body(tmp_path: Path) -> None:
    asked: list[str | None] = []
    other = hashlib.sha256(b"other").hexdigest()
    blobs = BlobStore(tmp_path / "blobs")
    with pytest.raises(Conflict, match="not the expected"):
        incoming = _peer(lambda r: _whole(r, asked, drop_first=False)).fetch_image(
            ASSET, expected_digest=other
        )
        receive_image(blobs, incoming, str(ASSET), expected_digest=other)
    assert list(blobs.digests()) == []


def _lying(request: httpx.Request) -> httpx.Response:
    """Announces DIGEST but sends other bytes."""
    headers = {"X-Mahiru-Digest": f"sha256:{DIGEST}"}
    return httpx.Response(200, headers=headers, content=DATA[::-1])


def test_bytes_without_the_expected_digest_are_not_kept(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    incoming = _peer(_lying).fetch_image(ASSET, expected_digest=DIGEST)
    with pytest.raises(InvalidInput, match="was expected"):
        receive_image(blobs, incoming, str(ASSET), expected_digest=DIGEST)
    assert list(blobs.digests()) == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_a_result_without_the_announced_digest_is_refused(tmp_path: Path) -> None:
    result = ResultId("a" * 64)
    peer = PeerJobsClient("https://site.test/external", None, transport=httpx.MockTransport(_lying))
    blobs = BlobStore(tmp_path / "blobs")
    with pytest.raises(InvalidInput, match=f"{result}: received sha256 .*, announced {DIGEST}"):
        receive_image(blobs, peer.fetch_result(result), str(result))
