"""The compute-to-data scenario: party2's data stays at site2, party1's script goes there.

party1 (site1) holds the min/max compute asset `script1` and an output base;
party2 (site2) holds the input data set, which only site2 may access. The
rules are those of `examples/compute_to_data/rules.yaml`, and the job asks
for `[min, max]` of the input, which is `[1, 34]`.

`init_site` sets up one party's site; `submit_job` runs the job from site1,
as a client machine of party1 does.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mahiru.client.http import TlsIdentity
from mahiru.client.jobs import JobsClient, JobView
from mahiru.client.site import SiteClient
from mahiru.errors import InvalidInput, PermissionDenied
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.jobs import JobState
from mahiru.model.workflow import Job
from mahiru.scenarios.setup import ScenarioExample

NS1 = "party1.mahiru.example.org"
NS2 = "party2.mahiru.example.org"
PARTY1 = PartyId(NS1, "party1")
PARTY2 = PartyId(NS2, "party2")
SITE1 = SiteId(NS1, "site1")
SITE2 = SiteId(NS2, "site2")
SCRIPT = AssetId(NS1, "script1", SITE1)
OUTPUT_BASE = AssetId(NS1, "output_base", SITE1)
INPUT = AssetId(NS2, "input", SITE2)

#: The expected content of the result's /data/data.json.
EXPECTED_RESULT = [1, 34]

#: Asset archive file names, as `python -m mahiru.runtime.assets` writes them.
ARCHIVES = {
    SCRIPT: "minmax.tar",
    OUTPUT_BASE: "output-base.tar",
    INPUT: "compute-to-data-input.tar",
}


def _asset(asset_id: AssetId, kind: AssetKind, archive: Path, **metadata: Any) -> Asset:
    return Asset(asset_id, kind, {"size": archive.stat().st_size, **metadata})


def site_assets(site: SiteId, assets_dir: Path) -> list[tuple[Asset, Path]]:
    """The assets `site` stores, with their archive files in `assets_dir`."""
    assets: list[tuple[Asset, Path]] = []
    for asset_id, file_name in ARCHIVES.items():
        if asset_id.site != site:
            continue
        archive = assets_dir / file_name
        if not archive.is_file():
            raise InvalidInput(
                f"asset archive {archive} is missing: build the scenario assets with"
                " `make assets` (or `python -m mahiru.runtime.assets --out DIR`)"
            )
        if asset_id == SCRIPT:
            asset = _asset(
                asset_id, AssetKind.COMPUTE, archive, outputs={"output0": str(OUTPUT_BASE)}
            )
        else:
            asset = _asset(asset_id, AssetKind.DATA, archive)
        assets.append((asset, archive))
    return assets


#: The bundled example and its assets; the scenario's rules, job and site set-up.
SCENARIO = ScenarioExample("compute_to_data", site_assets)
example_path = SCENARIO.example_path
rules = SCENARIO.rules
job = SCENARIO.job
init_site = SCENARIO.init_site


#: How long a submission denied by policy is retried while the rules replicate (seconds).
REPLICATION_WAIT = 60.0

#: Receives one line of progress for people.
Say = Callable[[str], None]


def _quiet(line: str) -> None:
    """Say nothing."""


@dataclass(frozen=True)
class JobOutcome:
    """How the scenario job ended: its last view, its plan, and its result if it succeeded."""

    view: JobView
    plan: dict[str, str]
    result: object | None = None

    @property
    def ok(self) -> bool:
        """Whether the job succeeded with exactly the expected result."""
        return self.view.status.state is JobState.SUCCEEDED and self.result == EXPECTED_RESULT

    def to_json(self) -> dict[str, Any]:
        """A summary for scripts: job id, state, reason, plan, step states and result."""
        status = self.view.status
        return {
            "job": status.job_id,
            "state": status.state.value,
            "reason": status.reason,
            "plan": self.plan,
            "steps": {s.step: s.state.value for s in self.view.steps},
            "result": self.result,
        }


def timeline(view: JobView) -> list[str]:
    """One line per step (site, state, start after submission, duration), then the job's."""
    submitted = view.status.submitted_at
    lines = []
    for step in view.steps:
        start, end = step.started_at, step.finished_at
        offset = f"+{(start - submitted).total_seconds():.2f}s" if start else "-"
        took = f"{(end - start).total_seconds():.2f}s" if start and end else "-"
        line = f"  {step.step:<10} {step.site!s:<42} {step.state.value:<10} started {offset:<9}"
        line += f" took {took}"
        if step.reason:
            line += f" ({step.reason})"
        lines.append(line)
    if view.status.finished_at is not None:
        total = (view.status.finished_at - submitted).total_seconds()
        lines.append(f"  job {view.status.state.value} {total:.2f}s after submission")
    return lines


def _submit(site: SiteClient, jobs: JobsClient, workflow: Job, give_up: float, say: Say) -> JobView:
    """Submit the job; while policy denies it, let the rules replicate and try again."""
    while True:
        try:
            return jobs.submit(workflow)
        except PermissionDenied as denied:
            if time.monotonic() >= give_up:
                raise
            say(f"denied so far, the rules may still be replicating: {denied.message}")
        # Only admins may make the site replicate at once; a plain user's
        # submission waits for the site's own rounds (and its refresh on denial).
        with contextlib.suppress(PermissionDenied):
            site.replicate_now()
        time.sleep(1.0)


def submit_job(
    site_url: str,
    identity: TlsIdentity,
    timeout: float,
    say: Say = _quiet,
    workflow: Job | None = None,
) -> JobOutcome:
    """Submit the scenario job at site1 (its internal API), wait at most `timeout` seconds.

    `workflow` is this scenario's job unless given (the data access scenario
    runs its own through here). A denial by policy is retried for up to
    REPLICATION_WAIT seconds (the sites may not have replicated each other's
    rules yet). Once the job succeeded, its output is downloaded and read.
    """
    started = time.monotonic()
    deadline = started + timeout
    workflow = job() if workflow is None else workflow
    with SiteClient(site_url, identity) as site, JobsClient(site_url, identity) as jobs:
        view = _submit(site, jobs, workflow, min(deadline, started + REPLICATION_WAIT), say)
        job_id = view.status.job_id
        plan = view.status.plan
        assert plan is not None  # a job is planned when it is submitted
        plan_text = {step: str(where) for step, where in sorted(plan.assignments.items())}
        say(f"job {job_id} submitted")
        for step, where in plan_text.items():
            say(f"plan: step {step} runs at {where}")
        last: list[str] = []

        def progress(current: JobView) -> None:
            steps = ", ".join(f"{s.step}@{s.site.name}: {s.state.value}" for s in current.steps)
            line = f"job {current.status.state.value}: {steps}"
            if line not in last:
                last[:] = [line]
                say(f"{time.monotonic() - started:6.1f}s {line}")

        view = jobs.wait(job_id, max(deadline - time.monotonic(), 0.0), progress)
        for line in timeline(view):
            say(line)
        if view.status.state is not JobState.SUCCEEDED:
            return JobOutcome(view, plan_text)
        with tempfile.TemporaryDirectory(prefix="mahiru-result-") as temp:
            files = jobs.download_output(job_id, "result", Path(temp))
            data = [f for f in files if f.name == "data.json"]
            if not data:
                raise InvalidInput(f"the output of job {job_id} has no data.json")
            result = json.loads(data[0].read_text())
        return JobOutcome(view, plan_text, result)
