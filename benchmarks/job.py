"""The job path next to bare container runs of the same image doing the same work.

Usage: .venv/bin/python benchmarks/job.py [--runner docker|slurm] [--runs N]
       [--jobs J] [--chain S] [--assets DIR] [--quick]

Starts a registry and one site on loopback (real TLS, SQLite, a temporary
folder, in this process), which holds the input data sets, the minmax compute
asset and the output base, with rules that let it run minmax on them itself.
Every job gets inputs it has never seen (so no result is reused). Measured N
times each (default 3), medians reported:

- overhead: a one-step job from submission until the client sees it
  succeeded, minus one bare run of the minmax container on the same input
  (goal: at most 0.15 s more);
- throughput: J one-step jobs (default 20) submitted at once, next to J bare
  runs with the site's step concurrency (goal: at least 70% of bare);
- chain: one job of S minmax steps in a row (default 50), each on the output
  of the one before, next to S bare runs in sequence (goal: at most 1.3x).

With the docker runner a bare run is create, start, wait and remove of the
container through the same engine API the site uses (no network, input
read-only, output folder mounted). With `--runner slurm` the site hands its
steps to the local Slurm cluster (docs/slurm.md, scripts/ensure-slurm.sh) and
a bare run is `srun` of the same `docker run` on the same partition. Needs a
running engine and the base images (scripts/build-base-image.sh). The
scenario's asset archives are built in a temporary folder, or in DIR
(`--assets`: kept, and only rebuilt when their sources change). `--quick` runs
each part once with 2 jobs and a chain of 2 (a smoke test: the figures mean
nothing).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from tests.support.sites import Network, SiteServer, network

from mahiru.client.jobs import JobsClient
from mahiru.config import SlurmRunnerConfig
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.model.jobs import JobState
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job
from mahiru.runtime import DockerRuntime, docker_available
from mahiru.runtime.archives import write_data_image
from mahiru.runtime.assets import MINMAX_ASSET, OUTPUT_BASE_ASSET, build_scenario_assets

OVERHEAD_GOAL = 0.15
THROUGHPUT_GOAL = 0.70
CHAIN_GOAL = 1.3
#: Steps a site runs at once (StepWorker's default): the bare runs get the same.
CONCURRENCY = 4
#: How often the client asks for the job's state (seconds).
POLL = 0.02
SLURM_CONF = Path("/var/tmp/mahiru/slurm/etc/slurm.conf")
PARTITION = "mahiru"
EXPECTED = [1, 34]


class Bench:
    """One site holding everything a minmax job needs; fresh inputs on request."""

    def __init__(self, net: Network, site: SiteServer, archives: dict[str, Path], work: Path):
        self.site = site
        self.party = site.party
        self._work = work
        self._counter = itertools.count()
        self.results = f"asset_collection:{self.party.namespace}:results"
        self.minmax = self._asset_id("minmax")
        self.output_base = self._asset_id("output_base")
        site_id = site.id
        rules: list[dict[str, str]] = [
            {"type": "MayAccess", "site": site_id, "asset": self.results},
            {"type": "MayUse", "party": self.party.id, "asset": self.results, "conditions": "b"},
        ]
        for asset in (self.minmax, self.output_base):
            rules.append({"type": "MayAccess", "site": site_id, "asset": asset})
        for data in (self.output_base, self.results):
            rules.append(self._result_of("ResultOfDataIn", data=data, compute="*"))
        rules.append(self._result_of("ResultOfComputeIn", data="*", compute=self.minmax))
        with site.admin() as admin:
            admin.upload_asset(
                Asset(AssetId.parse(self.minmax), AssetKind.COMPUTE), archives[MINMAX_ASSET]
            )
            admin.upload_asset(
                Asset(AssetId.parse(self.output_base), AssetKind.DATA), archives[OUTPUT_BASE_ASSET]
            )
            for rule in rules:
                admin.add_rule(self.party.sign(rule))
        net.replicate_all()

    def _asset_id(self, name: str) -> str:
        namespace = self.party.namespace
        return f"asset:{namespace}:{name}:{namespace}:site"

    def _result_of(self, kind: str, *, data: str, compute: str) -> dict[str, str]:
        return {
            "type": kind,
            "data": data,
            "compute": compute,
            "output": "*",
            "collection": self.results,
        }

    def new_inputs(self, count: int) -> list[str]:
        """`count` input data sets never used before (minmax of each is [1, 34]), stored."""
        ids = []
        with self.site.admin() as admin:
            for _ in range(count):
                number = next(self._counter)
                folder = self._work / f"input-{number}"
                folder.mkdir()
                (folder / "data.json").write_text(json.dumps([1, 34, 2 + number % 30]))
                archive = self._work / f"input-{number}.tar"
                write_data_image([folder / "data.json"], archive)
                ident = self._asset_id(f"input{number}")
                admin.upload_asset(Asset(AssetId.parse(ident), AssetKind.DATA), archive)
                for rule in (
                    {"type": "MayAccess", "site": self.site.id, "asset": ident},
                    self._result_of("ResultOfDataIn", data=ident, compute="*"),
                ):
                    admin.add_rule(self.party.sign(rule))
                ids.append(ident)
        return ids

    def chain_job(self, data: str, steps: int) -> Job:
        """A job of `steps` minmax steps in a row, the first on `data`."""
        return job_from_dict(
            {
                "submitter": self.party.id,
                "workflow": {
                    "inputs": ["input"],
                    "outputs": {"result": f"s{steps - 1}.output0"},
                    "steps": [
                        {
                            "name": f"s{i}",
                            "compute_asset": self.minmax,
                            "inputs": {"input0": "input" if i == 0 else f"s{i - 1}.output0"},
                            "outputs": {"output0": self.output_base},
                        }
                        for i in range(steps)
                    ],
                },
                "inputs": {"input": data},
            }
        )

    def run_jobs(self, jobs: list[Job]) -> float:
        """Seconds from submitting `jobs` (at once) until the client sees all succeeded."""
        with JobsClient(self.site.internal_url, self.party.user, timeout=60) as client:
            started = time.perf_counter()
            ids = [client.submit(job).status.job_id for job in jobs]
            for job_id in ids:
                view = client.wait(job_id, 600, interval=POLL)
                if view.status.state is not JobState.SUCCEEDED:
                    status = view.status
                    raise SystemExit(f"job {job_id}: {status.state.value} {status.reason}")
            took = time.perf_counter() - started
        return took


# --- bare runs -------------------------------------------------------------------


def _fresh_output(folder: Path) -> Path:
    output = folder / "output0"
    output.mkdir(parents=True)
    output.chmod(0o777)  # the image runs as nobody
    return output


def _check(output: Path) -> None:
    assert json.loads((output / "data.json").read_text()) == EXPECTED


class DockerBare:
    """The step as a bare container through the engine API: create, start, wait, remove."""

    def __init__(self, image: str) -> None:
        import docker  # the engine API the site uses

        self._client = docker.from_env()
        self._image = image

    def run(self, input_dir: Path, folder: Path) -> Path:
        """Run minmax on `input_dir`; its output folder."""
        output = _fresh_output(folder)
        api = self._client.api
        config = api.create_host_config(
            network_mode="none",
            binds={
                str(input_dir): {"bind": "/mahiru/inputs/input0", "mode": "ro"},
                str(output): {"bind": "/mahiru/outputs/output0", "mode": "rw"},
            },
        )
        container = api.create_container(self._image, host_config=config)["Id"]
        try:
            api.start(container)
            if api.wait(container)["StatusCode"] != 0:
                raise SystemExit(api.logs(container).decode(errors="replace"))
        finally:
            api.remove_container(container, force=True)
        _check(output)
        return output


class SlurmBare:
    """The step as `srun` of the same `docker run` on the site's partition."""

    def __init__(self, image: str, conf: Path) -> None:
        self._image = image
        self._env = {**os.environ, "SLURM_CONF": str(conf)}

    def run(self, input_dir: Path, folder: Path) -> Path:
        """Run minmax on `input_dir` as a Slurm job step; its output folder."""
        output = _fresh_output(folder)
        subprocess.run(
            [
                "srun", f"--partition={PARTITION}", "--cpus-per-task=1", "--quiet",
                "docker", "run", "--rm", "--network", "none", "--pull", "never",
                "-v", f"{input_dir}:/mahiru/inputs/input0:ro",
                "-v", f"{output}:/mahiru/outputs/output0",
                self._image,
            ],
            check=True, capture_output=True, env=self._env, timeout=120,
        )  # fmt: skip
        _check(output)
        return output


Bare = DockerBare | SlurmBare


def bare_parallel(bare: Bare, input_dir: Path, work: Path, count: int) -> float:
    """Seconds for `count` bare runs, CONCURRENCY at a time."""
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        started = time.perf_counter()
        list(pool.map(lambda i: bare.run(input_dir, work / f"p{i}"), range(count)))
        return time.perf_counter() - started


def bare_chain(bare: Bare, input_dir: Path, work: Path, steps: int) -> float:
    """Seconds for `steps` bare runs in sequence, each on the output of the one before."""
    started = time.perf_counter()
    current = input_dir
    for i in range(steps):
        current = bare.run(current, work / f"c{i}")
    return time.perf_counter() - started


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# --- set-up ----------------------------------------------------------------------


@contextmanager
def running_site(root: Path, runner: str) -> Iterator[tuple[Network, SiteServer]]:
    """A registry and one site, its steps on `runner`."""
    with network(root, lambda name: f"sqlite:///{root / name}.db", ("p1",)) as net:
        site = net.sites["p1"]
        if runner == "slurm":
            site.stop()
            config = SlurmRunnerConfig(
                kind="slurm", partition=PARTITION, shared_dir=root / "shared", slurm_conf=SLURM_CONF
            )
            site.config = site.config.model_copy(update={"runner": config})
            site.start()
        net.replicate_all()
        yield net, site


def median(values: list[float]) -> float:
    """The median."""
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """`median (min..max)` in seconds."""
    return f"{median(values):7.3f} s  ({min(values):.3f}..{max(values):.3f})"


def verdict(met: bool) -> str:
    """What a goal's check says."""
    return "met" if met else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", choices=("docker", "slurm"), default="docker")
    parser.add_argument("--runs", type=int, default=3, help="times each is measured (default 3)")
    parser.add_argument("--jobs", type=int, default=20, help="jobs submitted at once (default 20)")
    parser.add_argument("--chain", type=int, default=50, help="steps of the chain (default 50)")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=("overhead", "throughput", "chain")
    )
    parser.add_argument("--assets", type=Path, help="where to build (or find) the asset archives")
    parser.add_argument("--quick", action="store_true", help="each part once, tiny (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.jobs, args.chain = 1, 2, 2
    if not docker_available():
        print("no container engine answers; run scripts/ensure-engine.sh", file=sys.stderr)
        return 4
    if args.runner == "slurm" and not SLURM_CONF.is_file():
        print(f"no Slurm cluster ({SLURM_CONF}); run scripts/ensure-slurm.sh", file=sys.stderr)
        return 4
    runtime = DockerRuntime()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mahiru-bench-job-") as scratch:
        work = Path(scratch)
        archives = build_scenario_assets(runtime, args.assets or work / "assets")
        image = runtime.load_image(archives[MINMAX_ASSET])
        bare: Bare = DockerBare(image) if args.runner == "docker" else SlurmBare(image, SLURM_CONF)
        input_dir = work / "bare-input"
        input_dir.mkdir()
        (input_dir / "data.json").write_text(json.dumps([1, 34, 2]))
        input_dir.chmod(0o755)
        inputs = work / "inputs"
        inputs.mkdir()
        site_root = work / "site"
        with running_site(site_root, args.runner) as (net, site):
            bench = Bench(net, site, archives, inputs)
            print(f"runner: {args.runner}; medians of {args.runs}+ runs (min..max)", flush=True)
            bare.run(input_dir, work / "warm")  # the first container start pays for caches
            bench.run_jobs([bench.chain_job(bench.new_inputs(1)[0], 1)])
            if "overhead" not in args.skip:
                jobs, bares = [], []
                for run in range(args.runs if args.quick else max(args.runs, 3)):
                    (data,) = bench.new_inputs(1)
                    jobs.append(bench.run_jobs([bench.chain_job(data, 1)]))
                    bares.append(timed(lambda run=run: bare.run(input_dir, work / f"o{run}")))
                figures["overhead"] = (jobs, bares)
                report(figures, args, "overhead")
            if "throughput" not in args.skip:
                jobs, bares = [], []
                for run in range(args.runs):
                    batch = [bench.chain_job(d, 1) for d in bench.new_inputs(args.jobs)]
                    jobs.append(bench.run_jobs(batch))
                    bares.append(bare_parallel(bare, input_dir, work / f"t{run}", args.jobs))
                figures["throughput"] = (jobs, bares)
                report(figures, args, "throughput")
            if "chain" not in args.skip:
                jobs, bares = [], []
                for run in range(args.runs):
                    (data,) = bench.new_inputs(1)
                    jobs.append(bench.run_jobs([bench.chain_job(data, args.chain)]))
                    bares.append(bare_chain(bare, input_dir, work / f"ch{run}", args.chain))
                figures["chain"] = (jobs, bares)
                report(figures, args, "chain")
    return 0


def report(figures: dict[str, Any], args: argparse.Namespace, section: str) -> None:
    """The figures of `section` as soon as they are measured, the goal, and whether met."""
    bare_name = "bare srun docker run" if args.runner == "slurm" else "bare container run"
    if section == "overhead":
        jobs, bares = figures["overhead"]
        overhead = median(jobs) - median(bares)
        print(f"one-step job                     {spread(jobs)}")
        print(f"{bare_name:<32} {spread(bares)}")
        print(
            f"  overhead {overhead:.3f} s (goal <= {OVERHEAD_GOAL} s: "
            f"{verdict(overhead <= OVERHEAD_GOAL)})"
        )
    if section == "throughput":
        jobs, bares = figures["throughput"]
        ratio = median(bares) / median(jobs)
        print(f"{args.jobs} one-step jobs at once        {spread(jobs)}")
        print(f"{args.jobs} bare runs, {CONCURRENCY} at a time       {spread(bares)}")
        print(
            f"  throughput {args.jobs / median(jobs):.2f} jobs/s vs {args.jobs / median(bares):.2f}"
            f" runs/s = {ratio:.0%} of bare (goal >= {THROUGHPUT_GOAL:.0%}: "
            f"{verdict(ratio >= THROUGHPUT_GOAL)})"
        )
    if section == "chain":
        jobs, bares = figures["chain"]
        ratio = median(jobs) / median(bares)
        print(f"{args.chain}-step chain job              {spread(jobs)}")
        print(f"{args.chain} bare runs in sequence       {spread(bares)}")
        print(f"  ratio {ratio:.2f}x (goal <= {CHAIN_GOAL}x: {verdict(ratio <= CHAIN_GOAL)})")
    sys.stdout.flush()  # a later part may fail: what was measured is out


if __name__ == "__main__":
    sys.exit(main())
