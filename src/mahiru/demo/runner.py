"""Running a scenario on a local network, with progress for people (`mahiru demo`)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mahiru.client.jobs import JobsClient, JobView
from mahiru.client.profiles import CONFIG_ENV, write_profiles
from mahiru.demo.network import LocalNetwork
from mahiru.errors import Internal, Unavailable
from mahiru.model.jobs import JobState
from mahiru.model.workflow import Job
from mahiru.policy.rules import Rule
from mahiru.runtime.assets import build_scenario_assets
from mahiru.runtime.docker_connection import docker_available
from mahiru.runtime.docker_engine import DockerRuntime
from mahiru.scenarios import compute_to_data as scenario
from mahiru.scenarios import data_access
from mahiru.scenarios.setup import PartyCredentials, SiteSpec

REPLICATION_TIMEOUT = 60.0
JOB_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class DemoScenario:
    """What differs between the scenarios the demo runs (parties, sites and assets do not)."""

    init_site: Callable[[str, PartyCredentials, SiteSpec, Path], int]
    rules: Callable[[], list[Rule]]
    job: Callable[[], Job]


#: The scenarios `mahiru demo --scenario` runs, by name.
SCENARIOS = {
    "compute_to_data": DemoScenario(scenario.init_site, scenario.rules, scenario.job),
    "data_access": DemoScenario(data_access.init_site, data_access.rules, data_access.job),
}


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo produced: the plan, the result and its workspace (gone unless kept)."""

    job_id: str
    plan: dict[str, str]
    result: object
    workdir: Path


def _wait_for_rules(network: LocalNetwork, total: int, console: Console) -> None:
    """Replicate until every site holds all `total` rules (bounded)."""
    deadline = time.monotonic() + REPLICATION_TIMEOUT
    for site in network.sites:
        with network.site_client(site) as client:
            while True:
                status = client.replicate_now()
                if status.get("rules_in_policy") == total:
                    break
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"{site} holds {status.get('rules_in_policy')} of {total} rules after"
                        f" {REPLICATION_TIMEOUT:.0f} s of replication"
                    )
                time.sleep(0.5)
    console.print(f"  every site holds all {total} rules")


def _describe_steps(view: JobView) -> str:
    return ", ".join(f"{s.step}@{s.site.name}: {s.state.value}" for s in view.steps)


def _timeline(view: JobView) -> list[str]:
    """One line per step: site, state, when it started and how long it took."""
    submitted = view.status.submitted_at
    lines = []
    for step in view.steps:
        start = step.started_at
        end = step.finished_at
        offset = f"+{(start - submitted).total_seconds():.2f}s" if start else "-"
        took = f"{(end - start).total_seconds():.2f}s" if start and end else "-"
        lines.append(
            f"  {step.step:<10} {step.site!s:<42} {step.state.value:<10}"
            f" started {offset:<8} took {took}"
        )
    if view.status.finished_at is not None:
        total = (view.status.finished_at - submitted).total_seconds()
        lines.append(f"  job {view.status.state.value} {total:.2f}s after submission")
    return lines


def run_demo(
    *,
    workdir: Path | None = None,
    assets_dir: Path | None = None,
    keep: bool = False,
    console: Console | None = None,
    scenario_name: str = "compute_to_data",
) -> DemoResult:
    """Run a scenario (compute-to-data by default) on a fresh local network; stop unless `keep`.

    Without `workdir` the network lives in a new temporary folder, removed at
    the end of a run that succeeded and was not kept; any other workspace
    stays, and the last line says where it is and how to remove it.
    """
    chosen = SCENARIOS[scenario_name]
    console = console or Console(soft_wrap=True)
    if not docker_available():
        raise Unavailable(
            "no container engine answers (DOCKER_HOST or /var/run/docker.sock);"
            " `make demo` starts one, or run scripts/ensure-engine.sh"
        )
    # A folder of our own making goes at the end: it holds the network's CA key.
    remove = workdir is None and not keep
    root = workdir or Path(tempfile.mkdtemp(prefix="mahiru-demo-"))
    network: LocalNetwork | None = None
    stop = True
    succeeded = False
    try:
        root.mkdir(parents=True, exist_ok=True)
        assets = assets_dir or root / "assets"
        console.print("[bold]1/5[/] building the scenario's asset images")
        build_scenario_assets(DockerRuntime(), assets)

        console.print(f"[bold]2/5[/] starting a registry and two sites in {root}")
        network = LocalNetwork.create(
            root / "network", [(scenario.PARTY1, scenario.SITE1), (scenario.PARTY2, scenario.SITE2)]
        )
        network.start()
        for service in network.services():
            console.print(
                f"  {service.name:<9} https://127.0.0.1:{service.port}  log {service.log}"
            )

        console.print("[bold]3/5[/] setting up the sites: parties, assets and signed rules")
        for site in network.sites.values():
            added = chosen.init_site(network.registry_url, site.credentials, site.spec, assets)
            console.print(f"  {site.spec.site}: {added} rules of {site.credentials.party.name}")
        _wait_for_rules(network, len(chosen.rules()), console)

        console.print("[bold]4/5[/] submitting the job to site1")
        home = network.sites[scenario.SITE1]
        with JobsClient(home.spec.internal_url, home.credentials.site_identity()) as jobs:
            view = jobs.submit(chosen.job())
            job_id = view.status.job_id
            plan = view.status.plan
            assert plan is not None
            plan_text = {step: str(where) for step, where in plan.assignments.items()}
            for step, where in plan_text.items():
                console.print(f"  plan: step [bold]{step}[/] runs at [bold]{where}[/]")
            with console.status("running") as status:
                view = jobs.wait(
                    job_id,
                    JOB_TIMEOUT,
                    lambda v: status.update(f"job {v.status.state.value}: {_describe_steps(v)}"),
                )
            for line in _timeline(view):
                console.print(line)
            if view.status.state is not JobState.SUCCEEDED:
                raise Internal(
                    f"job {job_id} ended {view.status.state.value}: {view.status.reason}"
                )

            console.print("[bold]5/5[/] fetching the result")
            files = jobs.download_output(job_id, "result", root / "result")
        data_file = next(f for f in files if f.name == "data.json")
        result = json.loads(data_file.read_text())
        where = "" if remove else f" ({data_file})"
        console.print(f"  result{where}: [bold]{json.dumps(result)}[/]")
        if result != scenario.EXPECTED_RESULT:
            raise Internal(f"expected {scenario.EXPECTED_RESULT}, got {result}")
        succeeded = True
        if keep:
            stop = False
            _print_keep(network, console, root)
        return DemoResult(job_id, plan_text, result, root)
    finally:
        if stop:
            if network is not None:
                network.stop()
            # A failed run keeps its folder: the services' logs say what went wrong.
            leave_workspace(root, remove=remove and succeeded, console=console)


def leave_workspace(root: Path, *, remove: bool, console: Console) -> None:
    """Remove the demo's workspace `root` if `remove`, else say where it is and how to remove
    it: it holds the network's keys (the CA's private key too), databases and logs."""
    if remove:
        try:
            shutil.rmtree(root)
        except OSError as error:
            console.print(
                f"could not remove the workspace {root} ({error.strerror or error});"
                f" it holds the network's keys, the CA's private key too: rm -rf {root}"
            )
            return
        console.print(
            f"removed the workspace {root} (keys, the CA's private key too, databases, logs);"
            " --keep or --workdir DIR keeps one"
        )
        return
    console.print(
        f"the workspace {root} stays (keys, the CA's private key too, databases, logs);"
        f" remove it with: rm -rf {root}"
    )


def _print_keep(network: LocalNetwork, console: Console, root: Path) -> None:
    profiles = root / "profiles.toml"
    write_profiles(
        profiles,
        [
            network.profile(scenario.SITE1, "party1-admin"),
            network.profile(scenario.SITE2, "party2-admin"),
        ],
        default="party1-admin",
    )
    console.print(
        "\nThe services keep running. Profiles for the parties' admins (site, registry,"
        f" every key) are in {profiles}; to use them:"
    )
    console.print(f"  export {CONFIG_ENV}={profiles}")
    console.print("  mahiru jobs list                              # party1-admin, the default")
    console.print("  mahiru --profile party2-admin assets list")
    console.print("  mahiru register show")
    site1 = network.sites[scenario.SITE1]
    bundle = site1.credentials.admin_cert.with_suffix(".p12")
    console.print(
        f"Dashboard of site1: {site1.spec.internal_url}/ui/\n"
        f"  in a browser, import {bundle} (no password) as your certificate and trust"
        f" {network.network_ca} for websites (docs/dashboard.md shows how)"
    )
    pids = " ".join(str(s.process.pid) for s in network.services() if s.process is not None)
    console.print(f"Stop them with: kill {pids}")
    console.print(
        f"Their workspace {root} holds the network's keys, the CA's private key too; once they"
        f" are stopped, remove it with: rm -rf {root}"
    )
