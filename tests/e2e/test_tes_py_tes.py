"""Tasks run to their end through a site's TES endpoint, driven by `py-tes` as a TRE's tools
would, on real sites with real step containers (docs/tes.md); every answer is checked
against the TES 1.1 schemas."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tes
from tests.support.db import sqlite_urls
from tests.support.jobs import Scenario, compute_to_data
from tests.support.sites import network
from tests.support.tes import TesClient, check_list, check_task, tes_get
from tests.support.waiting import wait_until

from mahiru.client.jobs import JobsClient
from mahiru.runtime import LABEL_JOB, DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET

pytestmark = pytest.mark.e2e

WAIT = 180.0
DOC = Path(__file__).resolve().parents[2] / "docs" / "tes.md"


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    probe_archive: Callable[[str], Path],
) -> Iterator[Scenario]:
    """The compute-to-data assets and rules on two sites, plus failing and sleeping
    compute assets."""
    root = tmp_path_factory.mktemp("tes")
    computes = {"minmax": scenario_archives[MINMAX_ASSET]}
    for mode in ("fail", "hang"):
        computes[mode] = probe_archive(mode)
    with network(root, sqlite_urls(root), ("party1", "party2")) as net:
        net.replicate_all()
        yield compute_to_data(
            net, scenario_archives[INPUT_ASSET], scenario_archives[OUTPUT_BASE_ASSET], computes
        )


def client(scenario: Scenario) -> TesClient:
    """py-tes at site1's internal URL, as party1's user."""
    return TesClient(scenario.site1.internal_url, scenario.site1.party.user, timeout=60)


def task(scenario: Scenario, compute: str, **fields: Any) -> tes.Task:
    """The compute-to-data job as a task, running `compute`."""
    return tes.Task(
        executors=[tes.Executor(image=scenario.computes[compute], command=[])],
        inputs=[tes.Input(url=scenario.input, path="/mahiru/inputs/input0", type="DIRECTORY")],
        outputs=[
            tes.Output(url=scenario.output_base, path="/mahiru/outputs/output0", type="DIRECTORY")
        ],
        **fields,
    )


def views(scenario: Scenario, task_id: str) -> dict[str, dict[str, Any]]:
    """The task in each view, each checked against the schemas."""
    site, user = scenario.site1.internal_url, scenario.site1.party.user
    shown = {}
    for view in ("MINIMAL", "BASIC", "FULL"):
        answer = tes_get(site, f"/tasks/{task_id}", user, view=view)
        assert answer.status_code == 200, answer.text
        check_task(answer.json(), view)
        shown[view] = answer.json()
    return shown


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_docs_example_runs_the_compute_to_data_task_to_complete(
    scenario: Scenario, tmp_path: Path
) -> None:
    """The example of docs/tes.md, with this network's settings, runs the compute-to-data
    job as a task: COMPLETE, with the step's exit code and log, and its output [1, 34]."""
    settings, example = _python_blocks()
    assert "SITE_URL" in settings and "MahiruTES" in example
    user = scenario.site1.party.user
    namespace: dict[str, Any] = {
        "SITE_URL": scenario.site1.internal_url,
        "CERT": str(user.cert),
        "KEY": str(user.key),
        "CA": str(user.ca),
        "COMPUTE": scenario.computes["minmax"],
        "DATA": scenario.input,
        "OUTPUT_BASE": scenario.output_base,
    }
    exec(compile(example, str(DOC), "exec"), namespace)
    task_id = namespace["task_id"]
    assert namespace["done"].state == "COMPLETE"
    shown = views(scenario, task_id)
    assert shown["MINIMAL"] == {"id": task_id, "state": "COMPLETE"}
    full = shown["FULL"]
    assert full["tags"] == {"Project": "survey-2026"}
    (log,) = full["logs"]
    (executor,) = log["logs"]
    assert executor["exit_code"] == 0
    assert executor["start_time"] <= executor["end_time"]
    (output,) = log["outputs"]
    assert output["path"] == "/mahiru/outputs/output0" and int(output["size_bytes"]) > 0
    assert log["metadata"]["site_executor"] == scenario.site2.id
    with JobsClient(scenario.site1.internal_url, user, timeout=60) as jobs:
        assert str(jobs.status(task_id).status.outputs()["output0"]) == output["url"]
        files = jobs.download_output(task_id, "output0", tmp_path / "out")
    assert json.loads(files[0].read_text()) == [1, 34]
    listed = tes_get(scenario.site1.internal_url, "/tasks", user, state="COMPLETE", view="BASIC")
    check_list(listed.json(), "BASIC")
    assert task_id in [t["id"] for t in listed.json()["tasks"]]


def test_a_running_task_is_cancelled_and_leaves_no_container(
    scenario: Scenario, container_runtime: DockerRuntime
) -> None:
    """The sleeping probe is cancelled while it runs: CANCELED, and its container is gone."""
    tasks = client(scenario)
    task_id = tasks.create_task(task(scenario, "hang", name="sleeper"))
    seen: set[str] = set()

    def running() -> bool:
        # Every view, on the way from QUEUED to RUNNING, is a valid TES task.
        shown = views(scenario, task_id)
        seen.update(answer["state"] for answer in shown.values())
        return shown["MINIMAL"]["state"] == "RUNNING"

    wait_until(running, WAIT, "the sleeping task running", interval=0.5)
    assert seen <= {"QUEUED", "INITIALIZING", "RUNNING"}
    wait_until(
        lambda: container_runtime.list_step_containers({LABEL_JOB: task_id}),
        WAIT,
        "the sleeping task's container",
        interval=0.5,
    )
    tasks.cancel_task(task_id)
    assert tasks.get_task(task_id, "MINIMAL").state == "CANCELED"
    wait_until(
        lambda: not container_runtime.list_step_containers({LABEL_JOB: task_id}),
        WAIT,
        "the cancelled task's container gone",
        interval=0.5,
    )
    shown = views(scenario, task_id)
    assert shown["FULL"]["state"] == "CANCELED"


def test_a_failing_executor_is_an_executor_error_with_its_exit_code(scenario: Scenario) -> None:
    """The probe exits with 3: EXECUTOR_ERROR, with the exit code and the end of its log."""
    tasks = client(scenario)
    task_id = tasks.create_task(task(scenario, "fail"))
    done = tasks.wait(task_id, timeout=WAIT)
    assert done.state == "EXECUTOR_ERROR"
    shown = views(scenario, task_id)
    full = shown["FULL"]
    (executor,) = full["logs"][0]["logs"]
    assert executor["exit_code"] == 3
    assert "failing on purpose" in executor["stdout"]
    assert "stdout" not in shown["BASIC"]["logs"][0]["logs"][0]
    assert any("failed" in line for line in full["logs"][0]["system_logs"])
