"""Throughput and latency under load: concurrent jobs and concurrent cheap GETs at once.

Usage: .venv/bin/python benchmarks/load.py [--jobs N] [--getters M] [--seconds S]
       [--assets DIR] [--quick]

Starts a registry and site1/site2 as `mahiru serve` processes (LocalNetwork),
sets up the compute-to-data scenario, then for S seconds (default 30) keeps N
jobs (default 4) in flight at site1, each on its own copy of the input so that
each computes, while M threads (default 8) send cheap authenticated GETs
(site1's job list and status, site2's rule feed as site1). Prints jobs per
minute, requests per second, p50/p99 latency of each kind, and the count of
5xx answers (which must be 0). Needs a running engine and the base images.
The scenario's asset archives are built in a temporary folder, or in DIR
(`--assets`: kept, and only rebuilt when their sources change). `--quick`
keeps one job in flight and two GET threads for 3 s (a smoke test).
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from mahiru.client.jobs import JobsClient
from mahiru.demo.network import LocalNetwork
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, SiteId
from mahiru.model.jobs import JobState
from mahiru.model.serialization import job_from_dict, job_to_dict
from mahiru.policy.rules import rule_from_dict
from mahiru.runtime import DockerRuntime, docker_available
from mahiru.runtime.assets import (
    INPUT_ASSET,
    MINMAX_ASSET,
    OUTPUT_BASE_ASSET,
    build_scenario_assets,
)
from mahiru.scenarios import compute_to_data as scenario
from mahiru.scenarios.setup import add_rules, own_rules, register, upload_assets


def _cut(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[percent - 1]


def _set_up(net: LocalNetwork, archives: dict[str, Path], copies: int) -> list[AssetId]:
    """The scenario's assets and rules, with `copies` inputs at site2 (in one collection)."""
    inputs = [AssetId(scenario.NS2, f"load{i}", scenario.SITE2) for i in range(copies)]
    collection = f"asset_collection:{scenario.NS2}:load"
    extra = [
        {"type": "InAssetCollection", "asset": str(a), "collection": collection} for a in inputs
    ]
    extra += [
        {"type": "MayAccess", "site": str(scenario.SITE2), "asset": collection},
        {"type": "ResultOfDataIn", "data": collection, "compute": "*", "output": "*",
         "collection": f"asset_collection:{scenario.NS2}:results"},
    ]  # fmt: skip
    rules = [*scenario.rules(), *(rule_from_dict(r) for r in extra)]
    outputs = {"outputs": {"output0": str(scenario.OUTPUT_BASE)}}
    assets: dict[SiteId, list[tuple[Asset, Path | None]]] = {
        scenario.SITE1: [
            (Asset(scenario.SCRIPT, AssetKind.COMPUTE, outputs), archives[MINMAX_ASSET]),
            (Asset(scenario.OUTPUT_BASE, AssetKind.DATA), archives[OUTPUT_BASE_ASSET]),
        ],
        scenario.SITE2: [(Asset(a, AssetKind.DATA), archives[INPUT_ASSET]) for a in inputs],
    }
    for site in net.sites.values():
        register(net.registry_url, site.credentials, site.spec)
    for site in net.sites.values():
        key = site.credentials.party_dir / "party.key"
        with net.site_client(site.spec.site) as admin:
            upload_assets(admin, assets[site.spec.site])
            admin.replicate_now()
            add_rules(admin, own_rules(rules, site.credentials.party), key)
    for site_id in net.sites:
        with net.site_client(site_id) as admin:
            deadline = time.monotonic() + 60
            while admin.replicate_now().get("rules_in_policy") != len(rules):
                if time.monotonic() > deadline:
                    raise SystemExit("the rules did not replicate")
                time.sleep(0.5)
    return inputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs in flight (default 4)")
    parser.add_argument("--getters", type=int, default=8, help="GET threads (default 8)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--assets", type=Path, help="where to build (or find) the asset archives")
    parser.add_argument("--quick", action="store_true", help="1 job, 2 GET threads, 3 s")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.getters, args.seconds = 1, 2, 3.0
    if not docker_available():
        print("no container engine answers: run scripts/ensure-engine.sh", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="mahiru-load-") as folder:
        root = Path(folder)
        archives = build_scenario_assets(DockerRuntime(), args.assets or root / "assets")
        net = LocalNetwork.create(
            root / "network", [(scenario.PARTY1, scenario.SITE1), (scenario.PARTY2, scenario.SITE2)]
        )
        net.start()
        try:
            copies = args.jobs * 4 if args.quick else max(args.jobs * 20, 40)
            inputs = _set_up(net, archives, copies)
            return _load(net, inputs, args)
        finally:
            net.stop()


def _load(net: LocalNetwork, inputs: list[AssetId], args: argparse.Namespace) -> int:
    site1, site2 = net.sites[scenario.SITE1], net.sites[scenario.SITE2]
    identity = net.identity(scenario.SITE1)
    statuses: Counter[int] = Counter()
    latencies: dict[str, list[float]] = {"GET": [], "job": []}
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds
    next_input = iter(inputs)
    template = job_to_dict(scenario.job())

    def note(kind: str, seconds: float, status: int) -> None:
        with lock:
            latencies[kind].append(seconds)
            statuses[status // 100 * 100] += 1

    def getter(number: int) -> None:
        urls = [
            (f"{site1.spec.internal_url}/jobs", identity),
            (f"{site1.spec.internal_url}/status", identity),
            (f"{site2.spec.external_url}/rules/changes?since=0", None),
        ]
        with (
            httpx.Client(verify=identity.ssl_context(), timeout=30) as users,
            httpx.Client(verify=_site_context(net), timeout=30) as sites,
        ):
            turn = number
            while time.monotonic() < stop:
                url, who = urls[turn % len(urls)]
                turn += 1
                client = users if who is not None else sites
                started = time.perf_counter()
                response = client.get(url)
                note("GET", time.perf_counter() - started, response.status_code)

    def submitter() -> None:
        with JobsClient(site1.spec.internal_url, identity, timeout=60) as jobs:
            while time.monotonic() < stop:
                with lock:
                    asset = next(next_input, None)
                if asset is None:
                    return
                data = dict(template)
                data["inputs"] = {"input": str(asset)}
                started = time.perf_counter()
                job_id = jobs.submit(job_from_dict(data)).status.job_id
                view = jobs.wait(job_id, 300)
                state = view.status.state
                note(
                    "job",
                    time.perf_counter() - started,
                    200 if state is JobState.SUCCEEDED else 500,
                )

    threads = [threading.Thread(target=getter, args=(n,)) for n in range(args.getters)]
    threads += [threading.Thread(target=submitter) for _ in range(args.jobs)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - began
    gets, jobs = latencies["GET"], latencies["job"]
    print(f"load: {args.jobs} jobs in flight and {args.getters} GET threads for {took:.0f} s")
    print(
        f"  jobs   {len(jobs) / took * 60:7.1f} /min   p50 {_cut(jobs, 50):6.2f} s"
        f"   p99 {_cut(jobs, 99):6.2f} s   ({len(jobs)} jobs)"
    )
    print(
        f"  GETs   {len(gets) / took:7.1f} /s     p50 {_cut(gets, 50) * 1000:6.1f} ms"
        f"  p99 {_cut(gets, 99) * 1000:6.1f} ms  ({len(gets)} requests)"
    )
    print(f"  answers by class: {dict(sorted(statuses.items()))}; 5xx: {statuses[500]}")
    return 1 if statuses[500] else 0


def _site_context(net: LocalNetwork) -> ssl.SSLContext:
    """A TLS context presenting site1's own certificate (to call site2's external API)."""
    site_dir = net.sites[scenario.SITE1].service.config.parent
    context = ssl.create_default_context(cafile=str(net.network_ca))
    context.load_cert_chain(str(site_dir / "site.crt"), str(site_dir / "site.key"))
    return context


if __name__ == "__main__":
    sys.exit(main())
