"""The wire details of the site API: byte ranges for resumable downloads, peers' rule batches."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.manual_clock import ManualClock
from tests.support.streams import Dropping

from mahiru.api.site_images import parse_range
from mahiru.api.site_models import AssetOut
from mahiru.client.site import (
    PeerClient,
    asset_record_from_json,
    asset_record_to_json,
    parse_rule_batch,
)
from mahiru.clock import utc_now
from mahiru.errors import InvalidInput, Unavailable
from mahiru.model.assets import Asset, AssetKind, AssetRecord
from mahiru.model.identifiers import AssetId
from mahiru.model.registry import ChangeAction
from mahiru.policy.changes import RuleChange
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_rule
from mahiru.services.images import receive_image
from mahiru.services.site import UnreadableRuleChange
from mahiru.storage import BlobStore

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-", (0, 999)),
        ("bytes=100-", (100, 999)),
        ("bytes=100-199", (100, 199)),
        ("bytes=900-5000", (900, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=1000-", (1000, 999)),
        ("bytes=-0", (1000, 999)),
    ],
)
def test_single_ranges_are_honoured(header: str, expected: tuple[int, int]) -> None:
    """Start-only, start-end, suffix and beyond-the-end ranges (the last: unsatisfiable)."""
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header", ["bytes=", "bytes=-", "items=0-5", "bytes=5-1", "bytes=0-1,5-6", "bytes=x-"]
)
def test_malformed_or_multiple_ranges_mean_the_whole_image(header: str) -> None:
    """HTTP lets a server ignore a Range it does not support; the client gets everything."""
    assert parse_range(header, SIZE) is None


def _change(version: int) -> dict[str, Any]:
    rule = rule_from_dict(
        {
            "type": "MayAccess",
            "site": "site:p2.org:s2",
            "asset": f"asset:p1.org:d{version}:p1.org:s1",
        }
    )
    signed = sign_rule(rule, Ed25519PrivateKey.generate())
    return RuleChange(
        version, ChangeAction.ADDED, signed.rule_id, signed, None, utc_now()
    ).to_dict()


def test_an_unreadable_rule_is_set_aside_and_the_others_parsed() -> None:
    """One rule of an unknown type does not make the whole batch unreadable."""
    bad = _change(2)
    bad["body"] = {**bad["body"], "type": "MayTeleport"}
    batch = parse_rule_batch({"changes": [_change(1), bad, _change(3)], "version": 3})
    assert batch.version == 3
    first, second, third = batch.changes
    assert isinstance(first, RuleChange) and isinstance(third, RuleChange)
    assert isinstance(second, UnreadableRuleChange)
    assert second.version == 2
    assert second.rule_id == bad["rule_id"]
    assert "MayTeleport" in second.reason


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"changes": []},
        {"changes": [], "version": -1},
        {"changes": {}, "version": 1},
        {"changes": [{"rule_id": "x"}], "version": 1},
        {"changes": [], "version": 1, "extra": True},
    ],
)
def test_a_malformed_batch_is_refused_as_a_whole(data: object) -> None:
    """Without a usable version per change, nothing can be recorded: the batch is invalid."""
    with pytest.raises(InvalidInput):
        parse_rule_batch(data)


def test_the_client_reads_and_writes_the_asset_json_the_api_serves() -> None:
    """The CLI's JSON of an asset is the API's, and parses back to the same record."""
    record = AssetRecord(
        Asset(AssetId.parse("asset:p1.org:d:p1.org:s"), AssetKind.COMPUTE, {"a": [1]}, "ab" * 32),
        123,
        utc_now(),
    )
    served = AssetOut.of(record).model_dump(mode="json")
    assert asset_record_from_json(served) == record
    assert asset_record_from_json(asset_record_to_json(record)) == record
    assert set(asset_record_to_json(record)) == set(served)


def test_a_dropped_download_resumes_where_it_stopped(tmp_path: Path) -> None:
    """After a dropped connection the client asks for the rest (Range) and checks the digest."""
    data = os.urandom(3_000_000)
    digest = hashlib.sha256(data).hexdigest()
    asked: list[str | None] = []

    def serve(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("range"))
        start = int(asked[-1][len("bytes=") : -1]) if asked[-1] else 0
        headers = {"X-Mahiru-Digest": f"sha256:{digest}", "Content-Length": str(len(data) - start)}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = (
            Dropping(data[start:], 1_000_000) if len(asked) == 1 else httpx.ByteStream(data[start:])
        )
        return httpx.Response(206 if start else 200, headers=headers, stream=body)

    clock = ManualClock()
    peer = PeerClient(
        "https://site.test/external", None, transport=httpx.MockTransport(serve), clock=clock
    )
    blobs = BlobStore(tmp_path / "blobs")
    asset_id = AssetId.parse("asset:p1.org:d:p1.org:s")
    received = receive_image(blobs, peer.fetch_image(asset_id), str(asset_id))
    assert received == (digest, len(data))
    assert asked == [None, "bytes=1000000-"]
    assert blobs.path(digest).read_bytes() == data
    assert clock.sleeps == [0.4]  # the pause before resuming, slept on the client's clock


def test_a_download_that_keeps_dropping_gives_up_after_four_attempts(tmp_path: Path) -> None:
    """Four dropped attempts with 0.4, 0.8 and 1.6 s between them, then Unavailable."""
    data = os.urandom(1000)
    asked: list[str | None] = []

    def serve(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("range"))
        headers = {"X-Mahiru-Digest": f"sha256:{hashlib.sha256(data).hexdigest()}"}
        return httpx.Response(200, headers=headers, stream=Dropping(data, 0))

    clock = ManualClock()
    peer = PeerClient(
        "https://site.test/external", None, transport=httpx.MockTransport(serve), clock=clock
    )
    asset_id = AssetId.parse("asset:p1.org:d:p1.org:s")
    with pytest.raises(Unavailable, match="download failed after 4 attempts: connection reset"):
        receive_image(BlobStore(tmp_path / "blobs"), peer.fetch_image(asset_id), str(asset_id))
    assert len(asked) == 4
    assert clock.sleeps == [0.4, 0.8, 1.6]


def test_a_refused_range_starts_the_download_over(tmp_path: Path) -> None:
    """A 416 to a resumed download throws the partial bytes away; the next attempt asks for all."""
    data = os.urandom(2000)
    digest = hashlib.sha256(data).hexdigest()
    asked: list[str | None] = []

    def serve(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("range"))
        headers = {"X-Mahiru-Digest": f"sha256:{digest}"}
        if len(asked) == 1:
            return httpx.Response(200, headers=headers, stream=Dropping(data, 500))
        if asked[-1]:
            return httpx.Response(416, headers=headers)
        return httpx.Response(200, headers=headers, content=data)

    clock = ManualClock()
    peer = PeerClient(
        "https://site.test/external", None, transport=httpx.MockTransport(serve), clock=clock
    )
    blobs = BlobStore(tmp_path / "blobs")
    asset_id = AssetId.parse("asset:p1.org:d:p1.org:s")
    assert receive_image(blobs, peer.fetch_image(asset_id), str(asset_id)) == (digest, len(data))
    assert asked == [None, "bytes=500-", None]
    assert clock.sleeps == [0.4, 0.8]
