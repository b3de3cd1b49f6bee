"""Site-to-site image download throughput over mutual TLS, next to a raw TLS copy.

Usage: .venv/bin/python benchmarks/transfer.py [--size-mb N] [--repeat R] [--quick]

Starts a registry and two sites on loopback (real TLS, SQLite, a temporary
folder), stores a data image archive of about N MB (default 128; written
with the project's own archive writer, as `mahiru assets` does) at site p1,
lets site p2 access it, and times p2's PeerClient fetching it into a blob
store that checks it as a site's does (digest and image archive). Right
after each download it times a plain `ssl` socket copy of the same file
over loopback (read from disk, written to disk), the best a site could do.
Each pair is timed R times (default 3); prints the median of each
throughput, the median of the pairs' ratios (goal: at least 0.8; the
machine is shared, so the ratio of runs side by side is the figure that
means something) and the peak RSS of the process, for N/4 MB and then N MB
(goal: the peak stays flat as files grow); then the CPU time both ends spent
per MB (the process's, all threads), which other load on the machine moves
far less than the wall-clock figures. Server and client share this
process (and its GIL), for the site and the raw copy alike. `--quick` moves
4 MB once (a smoke test: the figures mean nothing).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from tests.support.sites import Network, may_access, network

from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.runtime.archives import write_data_image
from mahiru.services.images import receive_image
from mahiru.storage import BlobStore
from mahiru.storage.image_check import ImageCheck

CHUNK = 1024 * 1024


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_image(path: Path, size: int) -> int:
    """A data image archive of about `size` bytes at `path` (one file of random-ish bytes
    under /data, written with the project's own archive writer, as `mahiru assets` does);
    returns the archive's size."""
    block = os.urandom(CHUNK)
    data = path.with_name(f"{path.name}.data")
    with data.open("wb") as file:
        left = size
        while left > 0:
            file.write(block[: min(left, CHUNK)])
            left -= CHUNK
    try:
        return write_data_image([data], path)
    finally:
        data.unlink()


class Stopwatch:
    """Wall-clock seconds and this process's CPU seconds (all threads, both ends) since it
    was made."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self._wall, time.process_time() - self._cpu


def raw_tls_copy(net: Network, source: Path, dest: Path) -> tuple[float, float]:
    """Seconds (wall, CPU) to send `source` over a plain mutual-TLS socket on loopback into
    `dest`."""
    site = net.sites["p1"]
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(site.identity.cert, site.identity.key)
    server_context.load_verify_locations(net.certs.ca)
    server_context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        with (
            server_context.wrap_socket(connection, server_side=True) as tls,
            source.open("rb") as file,
        ):
            while chunk := file.read(CHUNK):
                tls.sendall(chunk)

    sender = threading.Thread(target=serve, daemon=True)
    sender.start()
    client_context = net.sites["p2"].identity.ssl_context()
    buffer = bytearray(CHUNK)
    watch = Stopwatch()
    with (
        socket.create_connection(("127.0.0.1", port)) as plain,
        client_context.wrap_socket(plain, server_hostname="localhost") as tls,
        dest.open("wb") as out,
    ):
        view = memoryview(buffer)
        while received := tls.recv_into(view):
            out.write(view[:received])
    sender.join()
    seconds = watch.read()
    listener.close()
    return seconds


def site_download(net: Network, asset_id: AssetId, blobs: BlobStore) -> tuple[float, float]:
    """Seconds (wall, CPU) for site p2's PeerClient to fetch the image from p1 into a blob
    store that checks it as the site's does (its ingress gate: a sound image archive, or
    nothing)."""
    blobs = blobs.checking(ImageCheck)
    with net.sites["p1"].peer(net.sites["p2"].identity) as peer:
        watch = Stopwatch()
        receive_image(blobs, peer.fetch_image(asset_id), str(asset_id))
        return watch.read()


def measure(net: Network, root: Path, size_mb: int, repeat: int) -> None:
    """Store an image of `size_mb` at p1, fetch it from p2 and copy it raw; print the figures."""
    site = net.sites["p1"]
    image = root / f"image-{size_mb}.tar"
    size = write_image(image, size_mb * CHUNK)
    asset_id = AssetId.parse(f"asset:p1.org:image{size_mb}:p1.org:site")
    with site.admin() as admin:
        admin.upload_asset(Asset(asset_id, AssetKind.DATA), image)
        admin.add_rule(site.party.sign(may_access(net.sites["p2"].id, str(asset_id))))
    site_times, raw_times, site_cpu, raw_cpu = [], [], [], []
    for attempt in range(repeat):
        fetched = root / f"fetched-{size_mb}-{attempt}"
        wall, cpu = site_download(net, asset_id, BlobStore(fetched))
        site_times.append(wall)
        site_cpu.append(cpu)
        shutil.rmtree(fetched)
        wall, cpu = raw_tls_copy(net, image, root / f"raw-{size_mb}.bin")
        raw_times.append(wall)
        raw_cpu.append(cpu)
    # Medians, and the ratio of each pair run side by side: the machine is shared, so
    # what else runs moves both figures of a pair alike more than it moves the ratio.
    site_seconds, raw_seconds = statistics.median(site_times), statistics.median(raw_times)
    ratio = statistics.median(raw / site for site, raw in zip(site_times, raw_times, strict=True))
    site_rate, raw_rate = size / CHUNK / site_seconds, size / CHUNK / raw_seconds
    print(
        f"{size / CHUNK:>6.0f} MB   site {site_rate:7.1f} MB/s ({site_seconds:5.2f} s)"
        f"   raw TLS {raw_rate:7.1f} MB/s ({raw_seconds:5.2f} s)"
        f"   ratio {ratio:4.2f}   peak RSS {peak_rss_mb():6.1f} MB",
        flush=True,
    )
    # CPU seconds of both ends (one process) per MB: what the path costs, which the
    # machine's other load moves far less than it moves the wall-clock figures.
    mb = size / CHUNK
    site_ms, raw_ms = (
        1000 * statistics.median(site_cpu) / mb,
        1000 * statistics.median(raw_cpu) / mb,
    )
    cpu_ratio = statistics.median(r / s for s, r in zip(site_cpu, raw_cpu, strict=True))
    print(
        f"{'':>6}      CPU per MB: site {site_ms:5.2f} ms   raw TLS {raw_ms:5.2f} ms"
        f"   CPU ratio {cpu_ratio:4.2f}",
        flush=True,
    )
    for path in (image, root / f"raw-{size_mb}.bin"):
        path.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=128, help="the larger file (default 128)")
    parser.add_argument("--repeat", type=int, default=3, help="median of R transfers (default 3)")
    parser.add_argument("--quick", action="store_true", help="4 MB once (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.repeat = 4, 1
    if args.size_mb < 4:
        parser.error("--size-mb must be at least 4")
    with tempfile.TemporaryDirectory(prefix="mahiru-transfer-") as folder:
        root = Path(folder)
        urls = lambda name: f"sqlite:///{root / name}.db"  # noqa: E731
        print(f"peak RSS before: {peak_rss_mb():.1f} MB (1 MB = 2^20 bytes)")
        with network(root, urls, names=("p1", "p2")) as net:
            net.replicate_all()
            for size_mb in (args.size_mb // 4, args.size_mb):
                measure(net, root, size_mb, args.repeat)
    print("goals: ratio >= 0.8; peak RSS flat in the file size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
