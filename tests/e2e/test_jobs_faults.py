"""Jobs when things go wrong: a site killed mid-step, a step over its time limit, a step
reaching for the network, and steps that meet errors retrying cannot cure (reference: Execution).

The first three run on a `LocalNetwork`: the registry and both sites are real
`mahiru serve` processes, so a site can be SIGKILLed and started again. The
last two run on in-process sites whose container runtime is made to fail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.db import sqlite_urls
from tests.support.jobs import Scenario, compute_to_data
from tests.support.process_scenario import (
    SITE2,
    ProcessScenario,
    only_step,
    process_scenario,
    restart,
    sigkill,
    wake,
)
from tests.support.sites import Network, network
from tests.support.waiting import wait_until

from mahiru.client.jobs import JobsClient, JobView
from mahiru.errors import Unavailable
from mahiru.model.jobs import JobState, StepState
from mahiru.runtime import LABEL_JOB, DockerRuntime
from mahiru.runtime.assets import (
    INPUT_ASSET,
    MINMAX_ASSET,
    OUTPUT_BASE_ASSET,
)

pytestmark = pytest.mark.e2e

WAIT = 180.0
#: site2's `containers.timeout_seconds`: the sleeper fits in it, the hanger does not.
STEP_TIMEOUT = 12
SLEEP = 5


@pytest.fixture(scope="module")
def faulty(
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProcessScenario]:
    """The scenario on site1/site2 processes; site2 gives each step STEP_TIMEOUT seconds."""
    root = tmp_path_factory.mktemp("faults")
    site2 = {"containers": {"timeout_seconds": STEP_TIMEOUT}}
    with process_scenario(
        root, container_runtime, scenario_archives, site2, sleep=SLEEP
    ) as running:
        yield running


def _wait_for_container(runtime: DockerRuntime, job_id: str, client: JobsClient) -> None:
    deadline = time.monotonic() + WAIT
    while not runtime.list_step_containers({LABEL_JOB: job_id}):
        assert time.monotonic() < deadline, client.status(job_id).to_json()
        time.sleep(0.1)


def test_a_site_killed_mid_step_runs_it_again_after_restart_and_the_job_succeeds(
    faulty: ProcessScenario, container_runtime: DockerRuntime, tmp_path: Path
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
        assert only_step(client.status(job_id)).state is StepState.RUNNING
        sigkill(site2)
        # Nobody stopped the container: it was orphaned with its site.
        orphans = container_runtime.list_step_containers({LABEL_JOB: job_id})
        assert orphans
        assert client.status(job_id).status.state is JobState.RUNNING
        restart(site2)

        # The step's second run need not sleep SLEEP s as well: wake it (never the orphan).
        def woken_until_the_job_ends() -> bool:
            wake(container_runtime, {LABEL_JOB: job_id}, but=[c.id for c in orphans])
            return client.status(job_id).status.state.terminal

        wait_until(woken_until_the_job_ends, WAIT, "the job to end", interval=0.5)
        view = client.wait(job_id, WAIT)
        assert view.status.state is JobState.SUCCEEDED, view.to_json()
        step = only_step(view)
        assert step.state is StepState.SUCCEEDED and step.exit_code == 0
        files = client.download_output(job_id, "result", tmp_path)
        assert json.loads((tmp_path / "data.json").read_text()) == [1, 34]
        assert [f.name for f in files] == ["data.json"]
    assert not container_runtime.list_step_containers({LABEL_JOB: job_id})
    log = site2.log.read_text()
    assert "removed step containers left by an earlier run" in log


def test_a_step_over_its_time_limit_fails_the_job_with_a_timeout_reason(
    faulty: ProcessScenario, container_runtime: DockerRuntime
) -> None:
    """The hanger outlives site2's STEP_TIMEOUT: killed, the job fails saying so."""
    with faulty.client() as client:
        job_id = client.submit(faulty.job("hanger")).status.job_id
        view = client.wait(job_id, WAIT)
    assert view.status.state is JobState.FAILED, view.to_json()
    step = only_step(view)
    assert step.state is StepState.FAILED
    assert step.reason is not None and f"longer than its {STEP_TIMEOUT} s limit" in step.reason
    assert view.status.reason == f"step {step.step} failed"
    assert step.log_tail is not None and "sleeping" in step.log_tail
    assert step.started_at is not None and step.finished_at is not None
    assert (step.finished_at - step.started_at).total_seconds() >= STEP_TIMEOUT
    assert not container_runtime.list_step_containers({LABEL_JOB: job_id})


def test_a_step_that_reaches_for_the_network_fails_with_its_exit_code_and_log(
    faulty: ProcessScenario, container_runtime: DockerRuntime
) -> None:
    """The probe cannot reach a port listening on the host's 127.0.0.1: exit 4, log says why."""
    with faulty.client() as client:
        job_id = client.submit(faulty.job("network")).status.job_id
        view = client.wait(job_id, WAIT)
    assert view.status.state is JobState.FAILED, view.to_json()
    step = only_step(view)
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
    with network(root, sqlite_urls(root), ("party1", "party2")) as running:
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
    step = only_step(view)
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
    step = only_step(view)
    assert step.reason is not None
    assert step.reason.startswith("gave up after retrying for ")
    assert "(limit 3 s): cannot run the step's container: the engine does not answer" in step.reason
