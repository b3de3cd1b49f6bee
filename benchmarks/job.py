"""End-to-end latency of the compute-to-data job, next to a bare `docker run` of its step.

Usage: .venv/bin/python benchmarks/job.py [--runs N]

Starts a registry and site1/site2 as `mahiru serve` processes (LocalNetwork),
sets them up like the scenario's init_site scripts, then runs the job N + 1
times (default 3 + 1), each from submission until the result is downloaded
and read. The first run is reported on its own: it includes work later runs
may skip. In the same run, the minmax container is run on the same input
with the docker CLI (`docker run --rm --network none`, the bare baseline)
and with DockerRuntime.run_step (the runtime's isolation and bookkeeping).
Each job's time is then split by the sites' log events, and the copy of the
compute image from site1 to site2 and a `docker load` of it are timed alone.
Needs a running engine and the base images (scripts/build-assets.sh).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from mahiru.client.http import TlsIdentity
from mahiru.client.jobs import JobsClient, JobView
from mahiru.client.site import PeerClient
from mahiru.demo.network import LocalNetwork
from mahiru.model.jobs import JobState, StepState
from mahiru.runtime import DockerRuntime, StepLimits, docker_available
from mahiru.runtime.assets import (
    INPUT_ASSET,
    MINMAX_ASSET,
    OUTPUT_BASE_ASSET,
    build_scenario_assets,
)
from mahiru.scenarios import compute_to_data as scenario
from mahiru.services.images import receive_image
from mahiru.storage import BlobStore

LIMITS = StepLimits(cpus=1.0, memory_bytes=1 << 30, timeout_seconds=60, max_output_bytes=1 << 20)
GOAL_SECONDS = 2.0

#: Log events that split a job's time: (site, event) in the order they happen.
MILESTONES = [
    ("site1", "job planned"),
    ("site2", "steps received"),
    ("site2", "step container started"),
    ("site2", "step container finished"),
    ("site2", "results stored"),
    ("site1", "results stored"),
    ("site1", "job succeeded"),
]


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bare_docker_run(image: str, input_dir: Path, output_dir: Path) -> None:
    """The step as a plain `docker run`: no network, input read-only, output mounted."""
    output_dir.mkdir(parents=True)
    output_dir.chmod(0o777)  # the image runs as nobody
    subprocess.run(
        [
            "docker", "run", "--rm", "--network", "none",
            "-v", f"{input_dir}:/mahiru/inputs/input0:ro",
            "-v", f"{output_dir}:/mahiru/outputs/output0",
            image,
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    assert json.loads((output_dir / "data.json").read_text()) == scenario.EXPECTED_RESULT


def run_job(jobs: JobsClient, out: Path) -> JobView:
    """Submit, wait (polling every 50 ms), download and check the result; the last view."""
    job_id = jobs.submit(scenario.job()).status.job_id
    view = jobs.wait(job_id, 300, interval=0.05)
    if view.status.state is not JobState.SUCCEEDED:
        raise SystemExit(f"job {job_id} ended {view.status.state.value}: {view.status.reason}")
    assert [s.state for s in view.steps] == [StepState.SUCCEEDED], "the step did not run"
    files = jobs.download_output(job_id, "result", out)
    result = json.loads(next(f for f in files if f.name == "data.json").read_text())
    assert result == scenario.EXPECTED_RESULT, result
    return view


def forget_result(network: LocalNetwork, view: JobView) -> None:
    """Delete the job's result at both sites, so that the next run computes it again.

    The same job has the same result ids: without this, later runs would
    reuse the stored result and run no container.
    """
    result = view.status.outputs()["result"]
    for site in network.sites:
        with network.site_client(site) as admin:
            admin.delete_asset(result)


def milestones(network: LocalNetwork, job_id: str) -> list[tuple[str, datetime]]:
    """When each milestone of `job_id` happened, from the sites' JSON log lines, in order.

    Input fetches are logged without the job: those site2 logged between
    receiving the steps and starting the container count.
    """
    events: dict[tuple[str, str], datetime] = {}
    fetches: list[tuple[str, datetime]] = []
    for service in network.services():
        for line in service.log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            when = datetime.fromisoformat(entry["time"])
            if entry.get("event") == "fetching step input":
                fetches.append((f"site2: fetch {entry['asset'].split(':')[2]}", when))
            elif job_id in (entry.get("job"), entry.get("mahiru.job")):
                events.setdefault((service.name, entry.get("event", "")), when)
    found = [(f"{site}: {event}", events[(site, event)]) for site, event in MILESTONES]
    received = events[("site2", "steps received")]
    started = events[("site2", "step container started")]
    found += [(name, when) for name, when in fetches if received <= when <= started]
    return sorted(found, key=lambda item: item[1])


def print_split(network: LocalNetwork, job_id: str, submitted: datetime, total: float) -> None:
    """Each milestone's time after submission, and the gap from the one before."""
    last = 0.0
    for name, when in milestones(network, job_id):
        at = (when - submitted).total_seconds()
        print(f"    {name:<36} +{at:6.3f} s  (+{at - last:6.3f})")
        last = at
    print(f"    {'client: result read':<36} +{total:6.3f} s  (+{total - last:6.3f})")


def package_output(runtime: DockerRuntime, base: str, work: Path, i: int) -> None:
    """What storing a step's output does with the engine: build, save and remove its image."""
    image = runtime.build_data_image(base, work / "bare0")
    runtime.save_image(image, work / f"output{i}.tar")
    runtime.remove_image(image)


def set_up(network: LocalNetwork, assets: Path) -> None:
    """init_site at both sites, then replicate until each holds every rule."""
    for site in network.sites.values():
        scenario.init_site(network.registry_url, site.credentials, site.spec, assets)
    total = len(scenario.rules())
    deadline = time.monotonic() + 60
    for site_id in network.sites:
        with network.site_client(site_id) as client:
            while client.replicate_now().get("rules_in_policy") != total:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{site_id} did not get all {total} rules")
                time.sleep(0.5)


def summary(label: str, seconds: list[float]) -> str:
    """`label: median (min..max)`."""
    return (
        f"{label:<40} median {statistics.median(seconds):6.3f} s"
        f"   min {min(seconds):6.3f}   max {max(seconds):6.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs after the first (default 3)")
    args = parser.parse_args()
    if not docker_available():
        print("no container engine answers; run scripts/ensure-engine.sh", file=sys.stderr)
        return 4
    runtime = DockerRuntime()
    with tempfile.TemporaryDirectory(prefix="mahiru-bench-job-") as scratch:
        work = Path(scratch)
        archives = build_scenario_assets(runtime, work / "assets")
        minmax = runtime.load_image(archives[MINMAX_ASSET])
        runtime.extract_data(runtime.load_image(archives[INPUT_ASSET]), work / "input0")
        network = LocalNetwork.create(
            work / "network",
            [(scenario.PARTY1, scenario.SITE1), (scenario.PARTY2, scenario.SITE2)],
        )
        try:
            network.start()
            set_up(network, work / "assets")
            home = network.sites[scenario.SITE1]
            jobs_seconds: list[float] = []
            with JobsClient(home.spec.internal_url, home.credentials.site_identity()) as jobs:
                for run in range(args.runs + 1):
                    started = time.perf_counter()
                    view = run_job(jobs, work / f"result{run}")
                    took = time.perf_counter() - started
                    jobs_seconds.append(took)
                    print(f"job run {run + 1}{' (first)' if run == 0 else ''}: {took:.3f} s")
                    print_split(network, view.status.job_id, view.status.submitted_at, took)
                    forget_result(network, view)
            bare = [
                timed(lambda i=i: bare_docker_run(minmax, work / "input0", work / f"bare{i}"))
                for i in range(args.runs + 1)
            ]
            steps = [
                timed(
                    lambda i=i: runtime.run_step(
                        minmax, {"input0": work / "input0"}, ["output0"], LIMITS,
                        output_dir=work / f"step{i}",
                    )
                )
                for i in range(args.runs + 1)
            ]  # fmt: skip
            site2_dir = network.sites[scenario.SITE2].spec.certificate.parent
            site2 = TlsIdentity(site2_dir / "site.crt", site2_dir / "site.key", network.network_ca)
            blobs = BlobStore(work / "blobs")
            script, output_base = scenario.SCRIPT, scenario.OUTPUT_BASE
            with PeerClient(home.spec.external_url, site2) as peer:
                transfer = timed(
                    lambda: receive_image(blobs, peer.fetch_image(script), str(script))
                )
                base = timed(
                    lambda: receive_image(blobs, peer.fetch_image(output_base), str(output_base))
                )
            size = archives[MINMAX_ASSET].stat().st_size
            runtime.remove_image(minmax)
            load = timed(lambda: runtime.load_image(archives[MINMAX_ASSET]))
            data = runtime.load_image(archives[INPUT_ASSET])
            extract = [
                timed(lambda i=i: runtime.extract_data(data, work / f"extract{i}"))
                for i in range(args.runs + 1)
            ]
            output_base = runtime.load_image(archives[OUTPUT_BASE_ASSET])
            package = [
                timed(lambda i=i: package_output(runtime, output_base, work, i))
                for i in range(args.runs + 1)
            ]
        finally:
            network.stop()
    later = jobs_seconds[1:] or jobs_seconds
    baseline = statistics.median(bare)
    job = statistics.median(later)
    print()
    print(f"{'job, first run (image transfer included)':<40} {jobs_seconds[0]:6.3f} s")
    print(summary(f"job, runs 2..{len(jobs_seconds)}", later))
    print(summary("bare docker run (CLI, --rm)", bare))
    print(summary("DockerRuntime.run_step", steps))
    print(f"{'compute image site1 -> site2 (alone)':<40} {transfer:6.3f} s  ({size / 1e6:.0f} MB)")
    print(f"{'output base site1 -> site2 (alone)':<40} {base:6.3f} s")
    print(f"{'docker load of the compute image':<40} {load:6.3f} s")
    print(summary("extract_data of the input", extract))
    print(summary("package an output (build, save, remove)", package))
    overhead = job - baseline
    print(
        f"overhead (job median - bare median): {overhead:.3f} s, ratio {job / baseline:.1f}x"
        f" (goal < {GOAL_SECONDS:g} s: {'met' if overhead < GOAL_SECONDS else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
