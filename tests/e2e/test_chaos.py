"""Chaos: jobs run while a driver SIGKILLs the registry and the sites at random moments.

A registry and two sites run as `mahiru serve` processes (a LocalNetwork).
JOBS compute-to-data jobs, each on its own input (so each computes, none is
reused), are submitted a few at a time to site1, while a killer picks a
random service, kills it with SIGKILL at a random moment (handing over,
fetching, running, storing: whatever is going on) and starts it again. At
the end every job must have succeeded or failed with a reason, none stuck;
no step container, scratch container, temporary file or work folder is
left; every stored image matches its digest; the databases pass SQLite's
integrity check; and no record was lost.

Seeded and reproducible: the seed is printed, and MAHIRU_CHAOS_SEED replays it.
Bounded: JOBS jobs, at most MAX_KILLS kills, DEADLINE seconds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.support.shared import note_kill

from mahiru.client.jobs import JobsClient, JobView
from mahiru.demo.network import LocalNetwork, Service
from mahiru.errors import MahiruError
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.jobs import JobState
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job
from mahiru.policy.rules import rule_from_dict
from mahiru.runtime import LABEL_SITE, DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET
from mahiru.scenarios.setup import add_rules, register, upload_assets

pytestmark = pytest.mark.e2e

JOBS = 30
IN_FLIGHT = 3
MAX_KILLS = 40
MIN_KILLS = 15
DEADLINE = 600.0
#: How long a job may take to finish once the killing has stopped (seconds).
SETTLE = 240.0

RUN = uuid.uuid4().hex[:8]
NS1, NS2 = f"p1-{RUN}.chaos.example.org", f"p2-{RUN}.chaos.example.org"
PARTY1, PARTY2 = PartyId(NS1, "party1"), PartyId(NS2, "party2")
SITE1, SITE2 = SiteId(NS1, "site1"), SiteId(NS2, "site2")
SCRIPT = AssetId(NS1, "script", SITE1)
OUTPUT_BASE = AssetId(NS1, "output_base", SITE1)
INPUTS = f"asset_collection:{NS2}:inputs"
RESULTS1, RESULTS2 = f"asset_collection:{NS1}:results", f"asset_collection:{NS2}:results"


def _input(number: int) -> AssetId:
    return AssetId(NS2, f"input{number}", SITE2)


def _rules(inputs: int) -> list[dict[str, str]]:
    rules = [
        {"type": "InAssetCollection", "asset": str(_input(i)), "collection": INPUTS}
        for i in range(inputs)
    ]
    rules += [
        {"type": "MayAccess", "site": str(SITE2), "asset": INPUTS},
        {"type": "ResultOfDataIn", "data": INPUTS, "compute": "*", "output": "*",
         "collection": RESULTS2},
        {"type": "MayUse", "party": str(PARTY1), "asset": RESULTS2, "conditions": "chaos"},
        {"type": "ResultOfComputeIn", "data": "*", "compute": str(SCRIPT), "output": "*",
         "collection": RESULTS1},
        {"type": "ResultOfDataIn", "data": str(OUTPUT_BASE), "compute": "*", "output": "*",
         "collection": RESULTS1},
        {"type": "MayUse", "party": str(PARTY1), "asset": RESULTS1, "conditions": "chaos"},
    ]  # fmt: skip
    for site in (SITE1, SITE2):
        for asset in (str(SCRIPT), str(OUTPUT_BASE), RESULTS1, RESULTS2):
            rules.append({"type": "MayAccess", "site": str(site), "asset": asset})
    return rules


def _job(number: int) -> Job:
    return job_from_dict(
        {
            "submitter": str(PARTY1),
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "compute.output0"},
                "steps": [
                    {
                        "name": "compute",
                        "compute_asset": str(SCRIPT),
                        "inputs": {"input0": "input"},
                        "outputs": {"output0": str(OUTPUT_BASE)},
                    }
                ],
            },
            "inputs": {"input": str(_input(number))},
        }
    )


@pytest.fixture(scope="module")
def chaos_net(
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalNetwork]:
    """site1 (party1: the script and output base) and site2 (party2: JOBS inputs)."""
    root = tmp_path_factory.mktemp("chaos")
    net = LocalNetwork.create(root / "network", [(PARTY1, SITE1), (PARTY2, SITE2)])
    net.start()
    try:
        outputs = {"outputs": {"output0": str(OUTPUT_BASE)}}
        assets: dict[SiteId, list[tuple[Asset, Path | None]]] = {
            SITE1: [
                (Asset(SCRIPT, AssetKind.COMPUTE, outputs), scenario_archives[MINMAX_ASSET]),
                (Asset(OUTPUT_BASE, AssetKind.DATA), scenario_archives[OUTPUT_BASE_ASSET]),
            ],
            SITE2: [
                (Asset(_input(i), AssetKind.DATA), scenario_archives[INPUT_ASSET])
                for i in range(JOBS)
            ],
        }
        rules = [rule_from_dict(rule) for rule in _rules(JOBS)]
        for site in net.sites.values():
            register(net.registry_url, site.credentials, site.spec)
        for site in net.sites.values():
            with net.site_client(site.spec.site) as admin:
                upload_assets(admin, assets[site.spec.site])
                admin.replicate_now()
                mine = [r for r in rules if r.signer_namespace() == site.spec.site.namespace]
                add_rules(admin, mine, site.credentials.party_dir / "party.key")
        deadline = time.monotonic() + 60
        for site_id in net.sites:
            with net.site_client(site_id) as admin:
                while admin.replicate_now().get("rules_in_policy") != len(rules):
                    assert time.monotonic() < deadline, "the rules did not replicate"
                    time.sleep(0.5)
        yield net
    finally:
        net.stop()


@dataclass
class Record:
    """What the driver saw."""

    accepted: list[str] = field(default_factory=list)
    unsure: int = 0  # submissions cut off after they were sent: the site may have the job
    kills: Counter[str] = field(default_factory=Counter)
    recoveries: list[float] = field(default_factory=list)
    killer_error: BaseException | None = None


def _restart(service: Service) -> float:
    """Start a killed service again; seconds until it answers."""
    started = time.monotonic()
    service.start()
    service.wait_listening(time.monotonic() + 60)
    return time.monotonic() - started


def _killer(net: LocalNetwork, rng: random.Random, stop: threading.Event, record: Record) -> None:
    try:
        _kill_at_random(net, rng, stop, record)
    except BaseException as error:  # the test fails on it: a service may not have come back
        record.killer_error = error


def _kill_at_random(
    net: LocalNetwork, rng: random.Random, stop: threading.Event, record: Record
) -> None:
    services = {"registry": net.registry, **{s.name: d.service for s, d in net.sites.items()}}
    while not stop.wait(rng.uniform(0.5, 2.5)) and sum(record.kills.values()) < MAX_KILLS:
        name = rng.choice(sorted(services))
        service = services[name]
        assert service.process is not None
        note_kill(service.process.pid)
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(timeout=30)
        service.stop()  # closes its log; the process is gone
        record.kills[name] += 1
        time.sleep(rng.uniform(0.0, 1.5))
        record.recoveries.append(_restart(service))


def _submit(client: JobsClient, job: Job, record: Record, deadline: float) -> str | None:
    """Submit until the site takes it (it may be down for a moment); the job id."""
    while time.monotonic() < deadline:
        try:
            return client.submit(job).status.job_id
        except MahiruError as error:
            if error.type_name == "Unavailable":
                record.unsure += 1
            time.sleep(0.5)
    return None


def test_jobs_survive_random_kills_and_leave_nothing_behind(
    chaos_net: LocalNetwork, container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    net = chaos_net
    seed = int(os.environ.get("MAHIRU_CHAOS_SEED") or random.randrange(1 << 32))
    print(f"\nchaos seed {seed} (replay: MAHIRU_CHAOS_SEED={seed})")
    rng = random.Random(seed)
    record = Record()
    stop = threading.Event()
    started = time.monotonic()
    deadline = started + DEADLINE
    killer = threading.Thread(target=_killer, args=(net, rng, stop, record))
    killer.start()
    client = JobsClient(net.sites[SITE1].spec.internal_url, net.identity(SITE1), timeout=30)
    try:
        pending: list[str] = []
        for number in range(JOBS):
            job_id = _submit(client, _job(number), record, deadline)
            assert job_id is not None, "site1 took no job before the deadline"
            record.accepted.append(job_id)
            pending.append(job_id)
            while len(pending) >= IN_FLIGHT and time.monotonic() < deadline:
                pending = [j for j in pending if not _finished(client, j)]
                time.sleep(0.3)
        # Fast runs end before the killer got going: let it reach its minimum.
        while sum(record.kills.values()) < MIN_KILLS and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        killer.join()
    assert record.killer_error is None, f"the killer failed: {record.killer_error!r}"
    chaos_ended = time.monotonic()
    # The services are all up again; every job must now come to an end.
    outcomes: dict[str, JobState] = {}
    settle = time.monotonic() + SETTLE
    for job_id in record.accepted:
        while True:
            view = _view(client, job_id)
            if view is not None and view.status.state.terminal:
                outcomes[job_id] = view.status.state
                if view.status.state is not JobState.SUCCEEDED:
                    assert view.status.reason, f"job {job_id} failed without a reason"
                    print(f"job {job_id} {view.status.state.value}: {view.status.reason}")
                    for step in view.steps:
                        print(f"  step {step.step} at {step.site}: {step.state.value}", step.reason)
                break
            assert time.monotonic() < settle, f"job {job_id} is stuck: {view and view.to_json()}"
            time.sleep(0.5)
    settled = time.monotonic()
    succeeded = [j for j, state in outcomes.items() if state is JobState.SUCCEEDED]
    for job_id in succeeded[:5] + succeeded[-5:]:
        (data,) = client.download_output(job_id, "result", tmp_path / job_id)
        assert json.loads(data.read_text()) == [1, 34]
    listed = {status.job_id for status in client.list()}
    client.close()
    print(
        f"chaos: {JOBS} jobs, kills {dict(record.kills)} ({sum(record.kills.values())}),"
        f" outcomes {dict(Counter(s.value for s in outcomes.values()))},"
        f" restart p50 {sorted(record.recoveries)[len(record.recoveries) // 2]:.2f} s"
        f" max {max(record.recoveries):.2f} s, chaos {chaos_ended - started:.0f} s,"
        f" settled {settled - chaos_ended:.1f} s after it, lost 0"
    )
    assert sum(record.kills.values()) >= MIN_KILLS, record.kills
    assert len(succeeded) == JOBS, dict(Counter(s.value for s in outcomes.values()))
    # No record lost: every accepted job is there, and at most the cut-off ones besides.
    assert set(record.accepted) <= listed
    assert len(listed) <= JOBS + record.unsure
    net.stop()  # the checks below read the files of stopped services
    for site in net.sites.values():
        folder = site.service.config.parent
        data = folder / "data"
        assert list((data / "work").iterdir()) == [], f"{site.spec.site}: work left behind"
        assert list((data / "blobs" / "tmp").iterdir()) == [], "temporary blobs left behind"
        verify = subprocess.run(
            [sys.executable, "-m", "mahiru", "blobs", "verify", "--config",
             str(site.service.config), "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr
        _check_database(folder / "site.db")
    _check_database(net.registry.config.parent / "registry.db")
    for site_id in net.sites:
        assert not container_runtime.list_step_containers({LABEL_SITE: str(site_id)})
    with sqlite3.connect(net.sites[SITE1].service.config.parent / "site.db") as db:
        steps = db.execute("SELECT count(*) FROM job_steps").fetchone()[0]
    assert steps >= len(listed)  # every job kept its step


def _finished(client: JobsClient, job_id: str) -> bool:
    view = _view(client, job_id)
    return view is not None and view.status.state.terminal


def _view(client: JobsClient, job_id: str) -> JobView | None:
    try:
        return client.status(job_id)
    except MahiruError:
        return None  # site1 is down for a moment


def _check_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", path
