"""Requests per second and latency of cheap authenticated GETs over mutual TLS.

Usage: .venv/bin/python benchmarks/api.py [--seconds S]

Starts a registry and two sites on loopback (real TLS, SQLite, a temporary
folder). One keep-alive client at a time sends GET requests for S seconds
(default 5) to each of: the registry's `/version` (as a party client) and a
site's `/external/rules/changes?since=0` (as the other, registered, site).
Prints requests/s and the p50 and p99 latency of each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from tests.support.sites import network

from mahiru.client.http import TlsIdentity


def hammer(label: str, url: str, identity: TlsIdentity, seconds: float) -> None:
    """GET `url` over one keep-alive connection for `seconds`; print the figures."""
    latencies: list[float] = []
    with httpx.Client(verify=identity.ssl_context(), timeout=10) as client:
        client.get(url).raise_for_status()  # the handshake is not what we measure
        end = time.perf_counter() + seconds
        while (start := time.perf_counter()) < end:
            response = client.get(url)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code} {response.text[:200]}")
    total = sum(latencies)
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{label:<36} {len(latencies) / total:7.0f} req/s   p50 {cuts[49] * 1000:6.2f} ms"
        f"   p99 {cuts[98] * 1000:6.2f} ms   ({len(latencies)} requests)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per endpoint (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mahiru-api-") as folder:
        root = Path(folder)
        urls = lambda name: f"sqlite:///{root / name}.db"  # noqa: E731
        with network(root, urls, names=("p1", "p2")) as net:
            net.replicate_all()
            hammer(
                "registry GET /version",
                f"{net.registry.url}/version",
                net.parties["p1"].client,
                args.seconds,
            )
            hammer(
                "site GET /external/rules/changes",
                f"{net.sites['p1'].external_url}/rules/changes?since=0",
                net.sites["p2"].identity,
                args.seconds,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
