"""Jobs when things go wrong: a site killed mid-step, a step over its time limit, a step
reaching for the network, and steps that meet errors retrying cannot cure (reference: Execution).

The first three run on a `LocalNetwork`: the registry and both sites are real
`mahiru serve` processes, so a site can be SIGKILLed and started again. The
last two run on in-process sites whose container runtime is made to fail.
"""

from __future__ import annotations

import json
import signal
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.jobs import Scenario, compute_to_data
from tests.support.sites import Network, network
from tests.support.waiting import wait_until

from mahiru.client.jobs import JobsClient, JobView
from mahiru.demo.network import LocalNetwork
from mahiru.errors import Unavailable
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.jobs import JobState, StepState, StepStatus
from mahiru.model.serialization import job_from_dict, job_to_dict
from mahiru.model.workflow import Job
from mahiru.policy.rules import Rule, rule_from_dict
from mahiru.runtime import LABEL_JOB, DockerRuntime, ImageConfig
from mahiru.runtime.assets import (
    COMPUTE_BASE_IMAGE,
    INPUT_ASSET,
    MINMAX_ASSET,
    MINMAX_DIR,
    OUTPUT_BASE_ASSET,
)
from mahiru.scenarios import compute_to_data as scenario
from mahiru.scenarios.setup import add_rules, own_rules, register, upload_assets

pytestmark = pytest.mark.e2e

WAIT = 180.0
#: site2's `containers.timeout_seconds`: the sleeper fits in it, the hanger does not.
STEP_TIMEOUT = 12
SLEEP = 5

NETWORK_PROBE = textwrap.dedent(
    """
    import os, socket, sys
    print("interfaces:", sorted(os.listdir("/sys/class/net")), flush=True)
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    except OSError as error:
        print("connect failed:", error, flush=True)
        sys.exit(4)
    print("connected", flush=True)
    """
)


#: This module's own party namespaces. Sites find their step containers by site id, so a
#: site2 of another test run on the same engine must not share ours (it would stop them).
RUN = uuid.uuid4().hex[:8]
NAMESPACES = {
    scenario.NS1: f"p1-{RUN}.faults.example.org",
    scenario.NS2: f"p2-{RUN}.faults.example.org",
}


def ours(data: Any) -> Any:
    """`data` (JSON-like) with the scenario's namespaces replaced by this module's."""
    text = json.dumps(data)
    for theirs, mine in NAMESPACES.items():
        text = text.replace(theirs, mine)
    return json.loads(text)


PARTY1 = PartyId.parse(ours(str(scenario.PARTY1)))
PARTY2 = PartyId.parse(ours(str(scenario.PARTY2)))
SITE1 = SiteId.parse(ours(str(scenario.SITE1)))
SITE2 = SiteId.parse(ours(str(scenario.SITE2)))
SCRIPT = AssetId.parse(ours(str(scenario.SCRIPT)))
OUTPUT_BASE = AssetId.parse(ours(str(scenario.OUTPUT_BASE)))
INPUT = AssetId.parse(ours(str(scenario.INPUT)))


@dataclass
class FaultyNetwork:
    """The scenario on a LocalNetwork, with extra compute assets at site1 (name -> id)."""

    net: LocalNetwork
    computes: dict[str, AssetId]
    listener: socket.socket

    def job(self, compute: str) -> Job:
        """The scenario job with another compute asset."""
        data = ours(job_to_dict(scenario.job()))
        data["workflow"]["steps"][0]["compute_asset"] = str(self.computes[compute])
        return job_from_dict(data)

    def client(self) -> JobsClient:
        """site1's jobs API, as party1's admin."""
        return JobsClient(self.net.sites[SITE1].spec.internal_url, self.net.identity(SITE1))


def _compute_images(runtime: DockerRuntime, minmax: str, port: int) -> dict[str, str]:
    """Test computes: `sleeper` (minmax after SLEEP s), `hanger`, `network` (a host port)."""
    minmax_cmd = f"python3 -I {MINMAX_DIR}/minmax.py"
    configs = {
        "sleeper": (minmax, ("sh", "-c", f"echo sleeping; sleep {SLEEP}; exec {minmax_cmd}")),
        "hanger": (minmax, ("sh", "-c", "echo sleeping; exec sleep 3600")),
        "network": (COMPUTE_BASE_IMAGE, ("python3", "-c", NETWORK_PROBE.format(port=port))),
    }
    return {
        name: runtime.build_image(base, {}, config=ImageConfig(cmd=cmd))
        for name, (base, cmd) in configs.items()
    }


def _rules(computes: list[AssetId]) -> list[Rule]:
    """The scenario's rules, and for each extra compute what they say of script1."""
    rules = yaml.safe_load(scenario.example_path("rules.yaml").read_text())["rules"]
    for compute in map(str, computes):
        rules += [
            {"type": "MayAccess", "site": str(SITE1), "asset": compute},
            {"type": "MayAccess", "site": str(SITE2), "asset": compute},
            {
                "type": "ResultOfComputeIn",
                "data": "*",
                "compute": compute,
                "output": "*",
                "collection": f"asset_collection:{scenario.NS1}:results",
            },
            {
                "type": "ResultOfDataIn",
                "data": str(scenario.INPUT),
                "compute": compute,
                "output": "*",
                "collection": f"asset_collection:{scenario.NS2}:results",
            },
        ]
    return [rule_from_dict(rule) for rule in ours(rules)]


def _replicate(net: LocalNetwork, total: int) -> None:
    deadline = time.monotonic() + 60
    for site in net.sites:
        with net.site_client(site) as client:
            while client.replicate_now().get("rules_in_policy") != total:
                assert time.monotonic() < deadline, f"{site} did not get all {total} rules"
                time.sleep(0.5)


@pytest.fixture(scope="module")
def faulty(
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FaultyNetwork]:
    """The scenario on site1/site2 processes; site2 gives each step STEP_TIMEOUT seconds."""
    root = tmp_path_factory.mktemp("faults")
    net = LocalNetwork.create(root / "network", [(PARTY1, SITE1), (PARTY2, SITE2)])
    site2_config = net.sites[SITE2].service.config
    config = yaml.safe_load(site2_config.read_text())
    config["containers"] = {"timeout_seconds": STEP_TIMEOUT}
    site2_config.write_text(yaml.safe_dump(config))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    minmax = container_runtime.load_image(scenario_archives[MINMAX_ASSET])
    images = _compute_images(container_runtime, minmax, listener.getsockname()[1])
    net.start()
    try:
        computes = {name: AssetId(SITE1.namespace, name, SITE1) for name in images}
        outputs = {"outputs": {"output0": str(OUTPUT_BASE)}}
        assets: dict[SiteId, list[tuple[Asset, Path | None]]] = {
            SITE1: [
                (Asset(SCRIPT, AssetKind.COMPUTE, outputs), scenario_archives[MINMAX_ASSET]),
                (Asset(OUTPUT_BASE, AssetKind.DATA), scenario_archives[OUTPUT_BASE_ASSET]),
            ],
            SITE2: [(Asset(INPUT, AssetKind.DATA), scenario_archives[INPUT_ASSET])],
        }
        for name, image in images.items():
            archive = root / f"{name}.tar"
            container_runtime.save_image(image, archive)
            assets[SITE1].append((Asset(computes[name], AssetKind.COMPUTE, outputs), archive))
        rules = _rules(list(computes.values()))
        for site in net.sites.values():
            register(net.registry_url, site.credentials, site.spec)
        for site in net.sites.values():
            with net.site_client(site.spec.site) as admin:
                upload_assets(admin, assets[site.spec.site])
                admin.replicate_now()  # the site must know both parties to take their rules
                party_rules = own_rules(rules, site.credentials.party)
                add_rules(admin, party_rules, site.credentials.party_dir / "party.key")
        _replicate(net, len(rules))
        yield FaultyNetwork(net, computes, listener)
    finally:
        net.stop()
        listener.close()
        for image in images.values():
            container_runtime.remove_image(image)


def _wait_for_container(runtime: DockerRuntime, job_id: str, client: JobsClient) -> None:
    deadline = time.monotonic() + WAIT
    while not runtime.list_step_containers({LABEL_JOB: job_id}):
        assert time.monotonic() < deadline, client.status(job_id).to_json()
        time.sleep(0.1)


def _only_step(view: JobView) -> StepStatus:
    (step,) = view.steps
    return step


@pytest.mark.serial  # a SIGKILLed site may leave scratch containers other tests count as leaks
def test_a_site_killed_mid_step_runs_it_again_after_restart_and_the_job_succeeds(
    faulty: FaultyNetwork, container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """SIGKILL site2 while its step runs, start it again: [1, 34], no step container left."""
    site2 = faulty.net.sites[SITE2].service
    with faulty.client() as client:
        job_id = client.submit(faulty.job("sleeper")).status.job_id
        _wait_for_container(container_runtime, job_id, client)
        # site1 mirrors site2's step state a moment later: wait until it has moved on.
        before_run = {StepState.WAITING, StepState.FETCHING}
        wait_until(
            lambda: {s.state for s in client.status(job_id).steps} - before_run,
            WAIT,
            "site1 to see the step running",
        )
        assert _only_step(client.status(job_id)).state is StepState.RUNNING
        assert site2.process is not None
        site2.process.send_signal(signal.SIGKILL)
        site2.process.wait(timeout=10)
        site2.stop()  # only closes its log: the process is gone
        # Nobody stopped the container: it was orphaned with its site.
        assert container_runtime.list_step_containers({LABEL_JOB: job_id})
        assert client.status(job_id).status.state is JobState.RUNNING
        site2.start()
        site2.wait_listening(time.monotonic() + 60)
        view = client.wait(job_id, WAIT)
        assert view.status.state is JobState.SUCCEEDED, view.to_json()
        step = _only_step(view)
        assert step.state is StepState.SUCCEEDED and step.exit_code == 0
        files = client.download_output(job_id, "result", tmp_path)
        assert json.loads((tmp_path / "data.json").read_text()) == [1, 34]
        assert [f.name for f in files] == ["data.json"]
    assert not container_runtime.list_step_containers({LABEL_JOB: job_id})
    log = site2.log.read_text()
    assert "removed step containers left by an earlier run" in log


def test_a_step_over_its_time_limit_fails_the_job_with_a_timeout_reason(
    faulty: FaultyNetwork, container_runtime: DockerRuntime
) -> None:
    """The hanger outlives site2's STEP_TIMEOUT: killed, the job fails saying so."""
    with faulty.client() as client:
        job_id = client.submit(faulty.job("hanger")).status.job_id
        view = client.wait(job_id, WAIT)
    assert view.status.state is JobState.FAILED, view.to_json()
    step = _only_step(view)
    assert step.state is StepState.FAILED
    assert step.reason is not None and f"longer than its {STEP_TIMEOUT} s limit" in step.reason
    assert view.status.reason == f"step {step.step} failed"
    assert step.log_tail is not None and "sleeping" in step.log_tail
    assert step.started_at is not None and step.finished_at is not None
    assert (step.finished_at - step.started_at).total_seconds() >= STEP_TIMEOUT
    assert not container_runtime.list_step_containers({LABEL_JOB: job_id})


def test_a_step_that_reaches_for_the_network_fails_with_its_exit_code_and_log(
    faulty: FaultyNetwork, container_runtime: DockerRuntime
) -> None:
    """The probe cannot reach a port listening on the host's 127.0.0.1: exit 4, log says why."""
    with faulty.client() as client:
        job_id = client.submit(faulty.job("network")).status.job_id
        view = client.wait(job_id, WAIT)
    assert view.status.state is JobState.FAILED, view.to_json()
    step = _only_step(view)
    assert step.exit_code == 4
    assert step.log_tail is not None and "connect failed" in step.log_tail
    assert "interfaces: ['lo']" in step.log_tail
    with pytest.raises(BlockingIOError):
        faulty.listener.accept()  # nothing came through
    assert not container_runtime.list_step_containers({LABEL_JOB: job_id})


# --- errors that retrying does not cure (in-process sites) ------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A registry and the sites of party1 and party2, in this process."""
    root = tmp_path_factory.mktemp("jobs-retries")
    with network(root, lambda name: f"sqlite:///{root / name}.db", ("party1", "party2")) as running:
        running.replicate_all()
        yield running


@pytest.fixture(scope="module")
def inprocess(
    net: Network, container_runtime: DockerRuntime, scenario_archives: dict[str, Path]
) -> Scenario:
    """The compute-to-data scenario on the in-process sites."""
    return compute_to_data(
        net,
        scenario_archives[INPUT_ASSET],
        scenario_archives[OUTPUT_BASE_ASSET],
        {"minmax": scenario_archives[MINMAX_ASSET]},
    )


def _run_failing(
    inprocess: Scenario, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> tuple[JobView, int]:
    """Run the job with site2's engine raising `error` on every run; its view and the runs."""
    app = inprocess.site2.app
    assert app is not None
    runtime = app.state.site.jobs.ports.environment.runner
    runs = []

    def run_step(*args: object, **kwargs: object) -> object:
        runs.append(args)
        raise error

    monkeypatch.setattr(runtime, "run_step", run_step)
    with JobsClient(inprocess.site1.internal_url, inprocess.site1.party.user, timeout=60) as user:
        job_id = user.submit(inprocess.job()).status.job_id
        view = user.wait(job_id, WAIT)
    return view, len(runs)


def test_an_unexpected_error_fails_the_step_after_three_attempts(
    inprocess: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-Mahiru exception is retried twice, then fails the step naming the error's type
    (its text, which can name the step's files, stays in the site's log)."""
    started = time.monotonic()
    view, runs = _run_failing(inprocess, monkeypatch, RuntimeError("engine exploded"))
    assert view.status.state is JobState.FAILED, view.to_json()
    assert runs == 3
    step = _only_step(view)
    assert step.reason == "unexpected error (3 attempts): RuntimeError"
    assert time.monotonic() - started < 60


@pytest.mark.serial  # counts the retries that fit in a 3 s deadline: load would cut them
def test_an_unavailable_engine_fails_the_step_once_the_deadline_passes(
    inprocess: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unavailable is retried with backoff, but only until the (here 3 s) deadline."""
    app = inprocess.site2.app
    assert app is not None
    monkeypatch.setattr(app.state.jobs.loops.worker.execution, "unavailable_deadline", 3.0)
    view, runs = _run_failing(inprocess, monkeypatch, Unavailable("the engine does not answer"))
    assert view.status.state is JobState.FAILED, view.to_json()
    assert runs >= 3
    step = _only_step(view)
    assert step.reason is not None
    assert step.reason.startswith("gave up after retrying for ")
    assert "(limit 3 s): the engine does not answer" in step.reason
