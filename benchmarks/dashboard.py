"""Render time of the dashboard's pages with 1,000 jobs and a 200-step workflow.

Usage: .venv/bin/python benchmarks/dashboard.py [--jobs N] [--steps S] [--quick]

Starts a registry and a site on loopback (real TLS, SQLite, a temporary
folder), stores N jobs (default 1,000) and one job of a chain of S steps
(default 200, every step started, then the job cancelled, so the timeline has
a bar per step), restarts the site, and fetches each dashboard page as a user
of the site's party. Prints the time of each page (median of 5) against the
2-second target. `--quick` stores 20 jobs and a 5-step job, fetches each page
once and judges no target (a smoke test).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from tests.support.sites import network

from mahiru.model.identifiers import JobId, SiteId
from mahiru.model.jobs import StepState
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job, Plan
from mahiru.storage import JobRepository, create_database

TARGET_SECONDS = 2.0


def chain_job(party: str, compute: str, data: str, steps: int) -> Job:
    """A job whose steps each read the previous step's output."""
    definitions = []
    for index in range(steps):
        source = "input" if index == 0 else f"s{index - 1}.out"
        definitions.append(
            {
                "name": f"s{index}",
                "compute_asset": compute,
                "inputs": {"x": source},
                "outputs": {"out": None},
            }
        )
    return job_from_dict(
        {
            "submitter": party,
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": f"s{steps - 1}.out"},
                "steps": definitions,
            },
            "inputs": {"input": data},
        }
    )


def fill(url: str, site: str, party: str, jobs: int, steps: int) -> str:
    """Store the jobs; return the id of the big one."""
    database = create_database(url)
    repository = JobRepository(database)
    compute = f"asset:{party.split(':')[1]}:script:{site.split(':', 1)[1]}"
    data = f"asset:{party.split(':')[1]}:data:{site.split(':', 1)[1]}"
    site_id = SiteId.parse(site)
    user = f"user@{party}"  # the party's plain user, who fetches the pages: they see their jobs
    small = chain_job(party, compute, data, 2)
    small_plan = Plan(dict.fromkeys(small.workflow.steps, site_id))
    for index in range(jobs):
        job_id = JobId(f"job{index:05d}")
        repository.create_job(
            job_id, small, small_plan, site_id, datetime.now(UTC), submitted_by=user
        )
        repository.cancel_job(job_id, "benchmark", datetime.now(UTC))
    big = chain_job(party, compute, data, steps)
    big_id = JobId("big-job")
    big_plan = Plan(dict.fromkeys(big.workflow.steps, site_id))
    repository.create_job(big_id, big, big_plan, site_id, datetime.now(UTC), submitted_by=user)
    for name in big.workflow.steps:
        for state in (StepState.FETCHING, StepState.RUNNING):
            repository.set_step_state(big_id, name, state, datetime.now(UTC))
    repository.cancel_job(big_id, "benchmark", datetime.now(UTC))
    database.close()
    return big_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 jobs, 5 steps, no target")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.steps = 20, 5
    fetches = 1 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with network(root, lambda name: f"sqlite:///{root / name}.db", ("p1",)) as net:
            site = net.sites["p1"]
            site.stop()
            started = time.perf_counter()
            big = fill(site.config.database_url, site.id, site.party.id, args.jobs, args.steps)
            print(
                f"stored {args.jobs} jobs and a {args.steps}-step job"
                f" in {time.perf_counter() - started:.1f} s"
            )
            site.start()
            pages = {
                "jobs, first page": "/jobs",
                "jobs, last page": f"/jobs?page={(args.jobs + 1 + 49) // 50}",
                f"job of {args.steps} steps": f"/jobs/{big}",
                f"why? ({args.steps} steps)": f"/why?job={big}",
                "audit, first page": "/audit",
                f"audit of the {args.steps}-step job": f"/audit?job={big}",
                "assets": "/assets",
                "rules": "/rules",
                "status": "/status",
            }
            worst = 0.0
            identity = site.party.user
            with httpx.Client(verify=identity.ssl_context(), timeout=60) as client:
                for label, path in pages.items():
                    url = f"{site.internal_url}/ui{path}"
                    times = []
                    for _ in range(fetches):
                        start = time.perf_counter()
                        response = client.get(url)
                        times.append(time.perf_counter() - start)
                        if response.status_code != 200:
                            raise SystemExit(f"{url}: HTTP {response.status_code}")
                    median = statistics.median(times)
                    worst = max(worst, median)
                    print(f"{label:<32} {median * 1000:8.1f} ms   {len(response.content):>9} bytes")
            if args.quick:
                print(f"slowest page {worst:.2f} s (quick: no target judged)")
                return 0
            verdict = "within" if worst <= TARGET_SECONDS else "OVER"
            print(f"slowest page {worst:.2f} s: {verdict} the {TARGET_SECONDS:.0f} s target")
            return 0 if worst <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
