"""Site-to-site image download throughput over mutual TLS, next to a raw TLS copy.

Usage: .venv/bin/python benchmarks/transfer.py [--size-mb N] [--repeat R]

Starts a registry and two sites on loopback (real TLS, SQLite, a temporary
folder), stores an image of N MB (default 256) at site p1, lets site p2
access it, and times p2's PeerClient fetching it into its blob store. In the
same run it times a plain `ssl` socket copy of the same file over loopback
(read from disk, written to disk), the best a site could do. Each is timed R
times (default 3) and the best is kept. Prints both throughputs, their ratio
(goal: at least 0.5) and the peak RSS of the process, for N/4 MB and then
N MB (goal: the peak stays flat as files grow). Server and client share this
process (and its GIL), for the site and the raw copy alike.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from tests.support.sites import Network, may_access, network

from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.services.images import receive_image
from mahiru.storage import BlobStore

CHUNK = 1024 * 1024


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_file(path: Path, size: int) -> None:
    """A file of `size` random-ish bytes, written in chunks (one random MiB repeated)."""
    block = os.urandom(CHUNK)
    with path.open("wb") as file:
        left = size
        while left > 0:
            file.write(block[: min(left, CHUNK)])
            left -= CHUNK


def raw_tls_copy(net: Network, source: Path, dest: Path) -> float:
    """Seconds to send `source` over a plain mutual-TLS socket on loopback into `dest`."""
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
    start = time.perf_counter()
    with (
        socket.create_connection(("127.0.0.1", port)) as plain,
        client_context.wrap_socket(plain, server_hostname="localhost") as tls,
        dest.open("wb") as out,
    ):
        view = memoryview(buffer)
        while received := tls.recv_into(view):
            out.write(view[:received])
    seconds = time.perf_counter() - start
    sender.join()
    listener.close()
    return seconds


def site_download(net: Network, asset_id: AssetId, blobs: BlobStore) -> float:
    """Seconds for site p2's PeerClient to fetch the image from p1 into a blob store."""
    with net.sites["p1"].peer(net.sites["p2"].identity) as peer:
        start = time.perf_counter()
        receive_image(blobs, peer.fetch_image(asset_id), str(asset_id))
        return time.perf_counter() - start


def measure(net: Network, root: Path, size_mb: int, repeat: int) -> None:
    """Store an image of `size_mb` at p1, fetch it from p2 and copy it raw; print the figures."""
    site = net.sites["p1"]
    size = size_mb * CHUNK
    image = root / f"image-{size_mb}.bin"
    write_file(image, size)
    asset_id = AssetId.parse(f"asset:p1.org:image{size_mb}:p1.org:site")
    with site.admin() as admin:
        admin.upload_asset(Asset(asset_id, AssetKind.DATA), image)
        admin.add_rule(site.party.sign(may_access(net.sites["p2"].id, str(asset_id))))
    site_times, raw_times = [], []
    for attempt in range(repeat):
        fetched = root / f"fetched-{size_mb}-{attempt}"
        site_times.append(site_download(net, asset_id, BlobStore(fetched)))
        shutil.rmtree(fetched)
        raw_times.append(raw_tls_copy(net, image, root / f"raw-{size_mb}.bin"))
    # The best of the repeats: the loopback is shared with whatever else the machine does.
    site_seconds, raw_seconds = min(site_times), min(raw_times)
    site_rate, raw_rate = size / CHUNK / site_seconds, size / CHUNK / raw_seconds
    print(
        f"{size_mb:>6} MB   site {site_rate:7.1f} MB/s ({site_seconds:5.2f} s)"
        f"   raw TLS {raw_rate:7.1f} MB/s ({raw_seconds:5.2f} s)"
        f"   ratio {site_rate / raw_rate:4.2f}   peak RSS {peak_rss_mb():6.1f} MB"
    )
    for path in (image, root / f"raw-{size_mb}.bin"):
        path.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256, help="the larger file (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N transfers (default 3)")
    args = parser.parse_args()
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
    print("goals: ratio >= 0.5; peak RSS flat in the file size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
