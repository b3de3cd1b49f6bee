"""The compute-to-data scenario on a `LocalNetwork`: the registry and both sites are real
`mahiru serve` processes, so a test can SIGKILL a site and start it again (this module
holds no tests).

site1 holds the scenario's compute asset and a few test computes (`sleeper`,
`hanger`, `network`, see `compute_images`), site2 the input; each test module
gives site2's configuration the sections it needs (a step time limit, a runner).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mahiru.client.jobs import JobsClient, JobView
from mahiru.demo.network import LocalNetwork, Service
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.jobs import StepStatus
from mahiru.model.serialization import job_from_dict, job_to_dict
from mahiru.model.workflow import Job
from mahiru.policy.rules import Rule, rule_from_dict
from mahiru.runtime import DockerRuntime, ImageConfig
from mahiru.runtime.assets import (
    COMPUTE_BASE_IMAGE,
    INPUT_ASSET,
    MINMAX_ASSET,
    MINMAX_DIR,
    OUTPUT_BASE_ASSET,
)
from mahiru.scenarios import compute_to_data as scenario
from mahiru.scenarios.setup import add_rules, own_rules, register, upload_assets
from tests.support.shared import note_kill

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

#: This test run's own party namespaces. Sites find their step containers by site id, so a
#: site2 of another test run on the same engine must not share ours (it would stop them).
RUN = uuid.uuid4().hex[:8]
NAMESPACES = {
    scenario.NS1: f"p1-{RUN}.faults.example.org",
    scenario.NS2: f"p2-{RUN}.faults.example.org",
}


def ours(data: Any) -> Any:
    """`data` (JSON-like) with the scenario's namespaces replaced by this run's."""
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
class ProcessScenario:
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


def compute_images(runtime: DockerRuntime, minmax: str, port: int, sleep: int) -> dict[str, str]:
    """Test computes: `sleeper` (minmax after `sleep` s, or at once when woken, see `wake`),
    `hanger`, `network` (a host port)."""
    minmax_cmd = f"python3 -I {MINMAX_DIR}/minmax.py"
    # The shell is the container's init: a signal it has no handler for never reaches it,
    # so a SIGUSR1 before the trap is set (or after the exec) changes nothing.
    sleeper = f"trap 'echo woken' USR1; echo sleeping; sleep {sleep} & wait $!; exec {minmax_cmd}"
    configs = {
        "sleeper": (minmax, ("sh", "-c", sleeper)),
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


@contextmanager
def process_scenario(
    root: Path,
    runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    site2_config: Mapping[str, Any],
    *,
    sleep: int,
    site_arguments: tuple[str, ...] = (),
) -> Iterator[ProcessScenario]:
    """The scenario on site1/site2 processes under `root`, site2's configuration given the
    sections of `site2_config`, each site served with `site_arguments` too; the sleeper
    sleeps `sleep` s. Stopped and its images removed on leaving."""
    net = LocalNetwork.create(root / "network", [(PARTY1, SITE1), (PARTY2, SITE2)])
    for site in net.sites.values():
        site.service.arguments = site_arguments
    config_file = net.sites[SITE2].service.config
    config = yaml.safe_load(config_file.read_text())
    config_file.write_text(yaml.safe_dump({**config, **site2_config}))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    minmax = runtime.load_image(scenario_archives[MINMAX_ASSET])
    images = compute_images(runtime, minmax, listener.getsockname()[1], sleep)
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
            runtime.save_image(image, archive)
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
        yield ProcessScenario(net, computes, listener)
    finally:
        net.stop()
        listener.close()
        for image in images.values():
            runtime.remove_image(image)


def wake(runtime: DockerRuntime, labels: Mapping[str, str], *, but: Iterable[str] = ()) -> None:
    """Send SIGUSR1 to the step containers with `labels` (except those in `but`): a sleeper
    computes at once, any other step takes no notice."""
    others = set(but)
    for container in runtime.list_step_containers(labels):
        if container.id not in others:  # it may end meanwhile: no error here, so no check
            subprocess.run(
                ["docker", "kill", "--signal", "USR1", container.id],
                capture_output=True,
                check=False,
            )


def only_step(view: JobView) -> StepStatus:
    """The job's one step."""
    (step,) = view.steps
    return step


def sigkill(service: Service) -> None:
    """SIGKILL the service's process, as a crash would, and wait until it is gone (what it
    started, such as its steps, is left as it was)."""
    assert service.process is not None
    note_kill(service.process.pid)
    service.process.send_signal(signal.SIGKILL)
    service.process.wait(timeout=10)
    service.stop()  # only closes its log: the process is gone


def restart(service: Service) -> None:
    """Start the service again and wait until it listens."""
    service.start()
    service.wait_listening(time.monotonic() + 60)
