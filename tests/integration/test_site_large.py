"""A 200 MB image goes up, comes down and moves to a peer without memory growing with it.

How memory is measured: the registry, both sites and the clients run in this
one process (the servers in threads), so one measurement covers the sending
and the receiving side of every transfer. Two numbers per transfer:

- the peak of Python's traced allocations (`tracemalloc`), which would show
  any buffering of the body in Python objects; and
- the growth of the process's peak resident set size (`VmHWM` in
  /proc/self/status, reset before each transfer by writing 5 to
  /proc/self/clear_refs), which also covers OpenSSL and other C buffers.

Both must stay far below the image size; the numbers are printed (run with
`-s` to see them) and attached to the test report as properties.
"""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.db import sqlite_urls
from tests.support.images import write_large_image
from tests.support.sites import may_access, may_use, network

from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.services.images import receive_image
from mahiru.storage import BlobStore

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
IMAGE_SIZE = 200 * MiB
#: Far below the image size: a body held in memory even once would break these.
MAX_TRACED_PEAK = 32 * MiB
MAX_RSS_GROWTH = 64 * MiB


def _write_image(path: Path) -> str:
    """Write a sound image archive of just over IMAGE_SIZE; return its sha256."""
    return write_large_image(path, IMAGE_SIZE)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


class Measurement:
    """Traced-allocation peak and resident-set growth of one transfer, in bytes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.traced_peak = 0
        self.rss_growth = 0
        self.seconds = 0.0

    def __str__(self) -> str:
        return (
            f"{self.name}: {IMAGE_SIZE / self.seconds / MiB:.0f} MiB/s,"
            f" traced peak {self.traced_peak / MiB:.1f} MiB,"
            f" RSS peak growth {self.rss_growth / MiB:.1f} MiB"
        )


def _measure(name: str, transfer: Callable[[], object]) -> Measurement:
    measurement = Measurement(name)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    rss_before = _status_kib("VmRSS")
    tracemalloc.reset_peak()
    traced_before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    transfer()
    measurement.seconds = time.perf_counter() - start
    measurement.traced_peak = tracemalloc.get_traced_memory()[1] - traced_before
    measurement.rss_growth = (_status_kib("VmHWM") - rss_before) * 1024
    return measurement


@pytest.fixture
def tracing() -> Iterator[None]:
    """Trace Python allocations for the test."""
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def test_a_200_mb_image_streams_with_flat_memory(
    tmp_path: Path, tracing: None, record_property: Callable[[str, object], None]
) -> None:
    """Upload, internal download and a peer's fetch of 200 MiB each stay far below 200 MiB."""
    image = tmp_path / "big.tar"
    digest = _write_image(image)
    urls = sqlite_urls(tmp_path)
    with network(tmp_path, urls, names=("p1", "p2")) as net:
        net.replicate_all()
        site1, site2 = net.sites["p1"], net.sites["p2"]
        asset_id = AssetId.parse("asset:p1.org:big:p1.org:site")
        with site1.admin() as admin:
            admin.add_rule(site1.party.sign(may_access(site2.id, str(asset_id))))
            admin.add_rule(site1.party.sign(may_use(site1.party.id, str(asset_id))))
            upload = _measure(
                "upload", lambda: admin.upload_asset(Asset(asset_id, AssetKind.DATA), image)
            )
            assert admin.get_asset(asset_id).asset.image_digest == digest
            download = _measure(
                "download", lambda: admin.download_image(asset_id, tmp_path / "down.tar")
            )
        assert _file_digest(tmp_path / "down.tar") == digest
        (tmp_path / "down.tar").unlink()
        blobs = BlobStore(tmp_path / "peer-blobs")
        with site1.peer(site2.identity) as peer:
            fetch = _measure(
                "peer fetch",
                lambda: receive_image(blobs, peer.fetch_image(asset_id), str(asset_id)),
            )
        assert blobs.has(digest) and blobs.size(digest) == image.stat().st_size
    for measurement in (upload, download, fetch):
        print(measurement)
        record_property(measurement.name, str(measurement))
        assert measurement.traced_peak < MAX_TRACED_PEAK, measurement
        assert measurement.rss_growth < MAX_RSS_GROWTH, measurement
