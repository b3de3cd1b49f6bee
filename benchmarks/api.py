"""REST throughput of the registry and a site over mutual TLS, against the bare limit.

Usage: .venv/bin/python benchmarks/api.py [--requests N] [--clients C] [--rounds R] [--quick]
                                          [--site-workers W]

Starts a registry and two sites as `mahiru serve` processes (LocalNetwork,
real TLS, SQLite, a temporary folder), registers both sites and adds
RULES signed rules at site1, and starts a bare ASGI app under uvicorn with
the same TLS settings (client certificates required, same CA and keys): the
practical limit of this machine. Then, for each cheap route and for the bare
app, C client processes (default 4, separate from the servers) each open one
keep-alive connection and send N requests in all (default 4,000), all at
once. Prints req/s, p50 and p99 latency, errors, the share of the bare limit
and, where the original Mahiru 0.0.1 was measured (docs/performance.md), the
ratio to its figures. With R rounds, each figure is the median round.
`--quick` is a smoke-test size (figures printed, never judged). With
`--site-workers W` each site runs W web workers beside its loops process
(`mahiru serve site --workers W`).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mahiru.demo.network import LocalNetwork, Service, free_port
from mahiru.model.identifiers import AssetId
from mahiru.policy.rules import rule_from_dict
from mahiru.scenarios import compute_to_data as scenario
from mahiru.scenarios.setup import add_rules, register

#: Rules published at site1 (the original was measured with 14).
RULES = 16
#: The original Mahiru 0.0.1's req/s on the same kind of machine (4 threads, plain HTTP,
#: falcon 3.0.0a3 under wsgiref): (low, high) over its runs; see docs/performance.md.
ORIGINAL = {
    "site GET /external/rules/changes?since=0": (497.0, 596.0),
    "registry GET /changes?since=0": (510.0, 597.0),
}
BARE = "bare ASGI app (uvicorn, same TLS)"


@dataclass(frozen=True)
class Target:
    """One route to load: where, and with which client certificate."""

    label: str
    port: int
    path: str
    cert: Path
    key: Path


@dataclass(frozen=True)
class Figures:
    """One round against one target."""

    rate: float
    p50: float
    p99: float
    errors: int


def _client(
    target: Target, ca: Path, count: int, start: object, results: multiprocessing.Queue[object]
) -> None:
    """One client process: one keep-alive connection, `count` GETs after `start` is set."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(target.cert), str(target.key))
    context.check_hostname = False
    connection = http.client.HTTPSConnection("127.0.0.1", target.port, context=context)
    latencies: list[float] = []
    errors = 0

    def get() -> bool:
        nonlocal connection
        try:
            connection.request("GET", target.path)
            response = connection.getresponse()
            response.read()
            return response.status == 200
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPSConnection("127.0.0.1", target.port, context=context)
            return False

    get()  # the handshake is not what we measure
    start.wait()  # type: ignore[attr-defined]
    began = time.perf_counter()
    for _ in range(count):
        sent = time.perf_counter()
        if not get():
            errors += 1
        latencies.append(time.perf_counter() - sent)
    results.put((began, time.perf_counter(), latencies, errors))
    connection.close()


def load(target: Target, ca: Path, requests: int, clients: int) -> Figures:
    """`requests` GETs of `target` from `clients` processes at once."""
    context = multiprocessing.get_context("fork")
    start = context.Event()
    results: multiprocessing.Queue[object] = context.Queue()
    each = max(1, requests // clients)
    workers = [
        context.Process(target=_client, args=(target, ca, each, start, results))
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # every client connected and waiting
    start.set()
    outcomes = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    began = min(o[0] for o in outcomes)  # type: ignore[index]
    ended = max(o[1] for o in outcomes)  # type: ignore[index]
    latencies = sorted(x for o in outcomes for x in o[2])  # type: ignore[index]
    errors = sum(o[3] for o in outcomes)  # type: ignore[index]
    cuts = statistics.quantiles(latencies, n=100)
    return Figures(len(latencies) / (ended - began), cuts[49], cuts[98], errors)


BARE_APP = """
import json, ssl, sys, uvicorn
BODY = json.dumps({"version": 1}).encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
port, cert, key, ca = sys.argv[1:5]
uvicorn.run(app, host="127.0.0.1", port=int(port), ssl_certfile=cert, ssl_keyfile=key,
            ssl_ca_certs=ca, ssl_cert_reqs=ssl.CERT_REQUIRED, log_level="warning",
            access_log=False, lifespan="off")
"""


def _bare_server(root: Path, cert: Path, key: Path, ca: Path) -> Service:
    """The bare app in its own process, listening with the registry's certificate."""
    port = free_port()
    log = root / "bare.log"
    service = Service("bare", root / "bare.py", log, port)
    service.config.write_text(BARE_APP)
    service._log_file = log.open("ab")
    service.process = subprocess.Popen(
        [sys.executable, str(service.config), str(port), str(cert), str(key), str(ca)],
        stdout=service._log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    service.wait_listening(time.monotonic() + 30)
    return service


def _lift_rate_limit(config: Path) -> None:
    """Let a peer call the external API as often as it likes: the limit is still checked
    (and costs what it costs), but a benchmark's peer is no flood."""
    settings = yaml.safe_load(config.read_text())
    settings["callers"] = {"external_burst": 10**9, "external_per_second": 1e9}
    config.write_text(yaml.safe_dump(settings))


def _set_up(net: LocalNetwork) -> None:
    """Both sites registered, RULES rules published at site1, known registered peers."""
    for site in net.sites.values():
        register(net.registry_url, site.credentials, site.spec)
    site1 = net.sites[scenario.SITE1]
    rules = [
        rule_from_dict(
            {
                "type": "InAssetCollection",
                "asset": str(AssetId(scenario.NS1, f"bench{i}", scenario.SITE1)),
                "collection": f"asset_collection:{scenario.NS1}:bench",
            }
        )
        for i in range(RULES)
    ]
    with net.site_client(scenario.SITE1) as admin:
        admin.replicate_now()  # learns the parties and that site2 is registered
        add_rules(admin, rules, site1.credentials.party_dir / "party.key")


def _targets(net: LocalNetwork, bare_port: int) -> list[Target]:
    site1, site2 = net.sites[scenario.SITE1], net.sites[scenario.SITE2]
    party = site1.credentials.registry_identity()
    admin = site1.credentials
    peer_dir = site2.service.config.parent
    registry = net.registry.port
    targets = [
        Target("registry " + path, registry, path.split()[1], party.cert, party.key)
        for path in (
            "GET /version",
            "GET /health",
            "GET /changes?since=0",
            "GET /parties",
            "GET /sites",
        )
    ]
    targets.append(
        Target(
            "site GET /external/rules/changes?since=0",
            site1.service.port,
            "/external/rules/changes?since=0",
            peer_dir / "site.crt",
            peer_dir / "site.key",
        )
    )
    targets.append(
        Target(
            "site GET /internal/status",
            site1.service.port,
            "/internal/status",
            admin.admin_cert,
            admin.admin_key,
        )
    )
    targets.append(Target(BARE, bare_port, "/", party.cert, party.key))
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="per route (default 4,000)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--rounds", type=int, default=1, help="median of R rounds (default 1)")
    parser.add_argument("--quick", action="store_true", help="a tiny run, for smoke tests")
    parser.add_argument(
        "--site-workers", type=int, default=1, help="web workers per site (default 1)"
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds = 80, 1
    with tempfile.TemporaryDirectory(prefix="mahiru-api-") as folder:
        root = Path(folder)
        net = LocalNetwork.create(
            root / "network", [(scenario.PARTY1, scenario.SITE1), (scenario.PARTY2, scenario.SITE2)]
        )
        _lift_rate_limit(net.sites[scenario.SITE1].service.config)
        if args.site_workers > 1:
            for site in net.sites.values():
                site.service.arguments = ("--workers", str(args.site_workers))
        net.start()
        bare: Service | None = None
        try:
            _set_up(net)
            registry_dir = net.registry.config.parent
            bare = _bare_server(
                root, registry_dir / "registry.crt", registry_dir / "registry.key", net.network_ca
            )
            return _report(_targets(net, bare.port), net.network_ca, args)
        finally:
            if bare is not None:
                bare.stop()
            net.stop()


def _report(targets: list[Target], ca: Path, args: argparse.Namespace) -> int:
    rounds: dict[str, list[Figures]] = {t.label: [] for t in targets}
    for _ in range(args.rounds):
        for target in targets:
            rounds[target.label].append(load(target, ca, args.requests, args.clients))
    median = {label: _median(figures) for label, figures in rounds.items()}
    limit = median[BARE].rate
    print(
        f"{args.clients} clients, one keep-alive connection each, {args.requests} requests"
        f" per route, mutual TLS; median of {args.rounds} round(s)"
    )
    print(
        f"{'route':<42} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
        f" {'of limit':>8} {'x original':>11}"
    )
    failed = 0
    for label, figures in median.items():
        failed += figures.errors
        original = ORIGINAL.get(label)
        versus = (
            f"{figures.rate / original[1]:.2f}-{figures.rate / original[0]:.2f}" if original else ""
        )
        print(
            f"{label:<42} {figures.rate:7.0f} {figures.p50 * 1000:7.2f} {figures.p99 * 1000:7.2f}"
            f" {figures.errors:6d} {figures.rate / limit:8.0%} {versus:>11}"
        )
    return 1 if failed else 0


def _median(figures: list[Figures]) -> Figures:
    """The round with the median rate."""
    ordered = sorted(figures, key=lambda f: f.rate)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    sys.exit(main())
