"""A job across two sites that each run two web workers beside a loops process
(`mahiru serve site --workers 2`): submitted through a worker, run by the loops
processes, and not lost when a web worker of each site is killed mid-step."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.process_scenario import (
    SITE1,
    SITE2,
    ProcessScenario,
    only_step,
    process_scenario,
)
from tests.support.waiting import wait_until

from mahiru.model.jobs import JobState, StepState
from mahiru.runtime import LABEL_JOB, DockerRuntime

pytestmark = pytest.mark.e2e

WAIT = 180.0
SLEEP = 4


@pytest.fixture(scope="module")
def split(
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProcessScenario]:
    """The scenario on site1/site2, each served by two web workers and a loops process."""
    root = tmp_path_factory.mktemp("workers")
    with process_scenario(
        root,
        container_runtime,
        scenario_archives,
        {},
        sleep=SLEEP,
        site_arguments=("--workers", "2"),
    ) as running:
        yield running


def _web_workers(log: Path) -> list[int]:
    """The pids of the web workers a site's supervisor started, oldest first."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [
        line["pid"]
        for line in lines
        if line.get("event") == "site process started" and line.get("role") == "web"
    ]


def test_a_job_runs_to_its_end_though_a_web_worker_of_each_site_is_killed(
    split: ProcessScenario, container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """Submit the sleeper; while its step runs, SIGKILL one web worker at each site: the job
    still succeeds with [1, 34], and each site started a worker in its place."""
    with split.client() as client:
        job_id = client.submit(split.job("sleeper")).status.job_id
        wait_until(
            lambda: container_runtime.list_step_containers({LABEL_JOB: job_id}),
            WAIT,
            "the step's container to start",
        )
        for site in (SITE1, SITE2):
            os.kill(_web_workers(split.net.sites[site].service.log)[0], signal.SIGKILL)
        view = client.wait(job_id, WAIT)
    assert view.status.state is JobState.SUCCEEDED, view.to_json()
    step = only_step(view)
    assert step.state is StepState.SUCCEEDED and step.exit_code == 0
    with split.client() as client:
        client.download_output(job_id, "result", tmp_path)
    assert json.loads((tmp_path / "data.json").read_text()) == [1, 34]
    for site in (SITE1, SITE2):
        log = split.net.sites[site].service.log
        wait_until(lambda: len(_web_workers(log)) == 3, 30, f"{site} to replace its worker")  # noqa: B023 (called at once)
