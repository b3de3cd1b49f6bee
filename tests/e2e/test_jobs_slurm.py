"""Jobs across real sites whose data site runs its steps on the Slurm cluster (docs/slurm.md):
the compute-to-data job end to end, a job cancelled while its step runs or waits in
Slurm's queue whose step's batch job and container are gone, and a data site SIGKILLed
while its step's batch job runs
(reference: Execution, "Where steps run")."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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
from tests.support.slurm import SlurmCluster, start_cluster
from tests.support.waiting import wait_until

from mahiru.client.jobs import JobsClient
from mahiru.config import SlurmRunnerConfig
from mahiru.model.jobs import JobState, StepState
from mahiru.runtime import LABEL_JOB, DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET
from mahiru.runtime.slurm_runner import SlurmRunner
from mahiru.runtime.slurm_script import labels_of

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]

WAIT = 120.0
#: How long the killed site's step sleeps: time to kill and restart the site while its
#: batch job runs (the restarted site cancels it long before it would end).
SLEEP = 30


@pytest.fixture(scope="module")
def cluster() -> SlurmCluster:
    """The test cluster, started if it is not running."""
    return start_cluster()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory, cluster: SlurmCluster) -> Iterator[Network]:
    """A registry and the sites of party1, party2 and party3; party2's site (the data's,
    where the step runs) runs its steps on the Slurm cluster."""
    root = tmp_path_factory.mktemp("jobs-slurm")
    names = ("party1", "party2", "party3")
    with network(root, sqlite_urls(root), names) as running:
        site2 = running.sites["party2"]
        site2.stop()
        runner = SlurmRunnerConfig(
            kind="slurm", partition="mahiru", shared_dir=root / "shared", slurm_conf=cluster.conf
        )
        site2.config = site2.config.model_copy(update={"runner": runner})
        site2.start()
        running.replicate_all()
        yield running


@pytest.fixture(scope="module")
def scenario(
    net: Network,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    probe_archive: Callable[[str], Path],
) -> Scenario:
    """The compute-to-data assets and rules, plus a compute asset that hangs."""
    computes = {"minmax": scenario_archives[MINMAX_ASSET], "hang": probe_archive("hang")}
    return compute_to_data(
        net, scenario_archives[INPUT_ASSET], scenario_archives[OUTPUT_BASE_ASSET], computes
    )


def test_compute_to_data_runs_as_a_slurm_job_at_the_data_and_delivers_1_and_34(
    scenario: Scenario, cluster: SlurmCluster, container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """site2 runs the step as a batch job on the cluster; site1 gets [1, 34], and nothing of
    the step is left: no job, no container, no files in the shared folder."""
    site2 = scenario.site2.site
    assert isinstance(site2.jobs.ports.environment.runner, SlurmRunner)
    with JobsClient(scenario.site1.internal_url, scenario.site1.party.user, timeout=60) as user:
        job_id = user.submit(scenario.job()).status.job_id
        view = user.wait(job_id, WAIT)
        assert view.status.state is JobState.SUCCEEDED, view.to_json()
        (step,) = view.steps
        assert step.state is StepState.SUCCEEDED and step.exit_code == 0
        files = user.download_output(job_id, "result", tmp_path / "out")
        assert json.loads(files[0].read_text()) == [1, 34]
    # Only this job's batch jobs: other tests' steps may share the cluster meanwhile.
    assert list(_batch_jobs_of(cluster, job_id).values()) == ["COMPLETED"]
    assert not container_runtime.list_step_containers({LABEL_JOB: job_id})
    runner = site2.config.runner
    assert isinstance(runner, SlurmRunnerConfig)
    assert not any((runner.shared_dir / "steps").iterdir())


def test_cancelling_a_job_cancels_its_steps_slurm_job_and_container(
    scenario: Scenario, container_runtime: DockerRuntime
) -> None:
    """A job cancelled while its step runs on the cluster: the job is cancelled, and neither
    the step's batch job nor its container is left."""
    site2 = scenario.site2.site
    runner = site2.jobs.ports.environment.runner
    with JobsClient(scenario.site1.internal_url, scenario.site1.party.user, timeout=60) as user:
        job_id = user.submit(scenario.job("hang")).status.job_id
        labels = {LABEL_JOB: job_id}
        (step,) = wait_until(lambda: runner.list_step_containers(labels), WAIT, "the step's job")
        wait_until(lambda: "sleeping" in runner.step_log(step.id), WAIT, "the step running")

        user.cancel(job_id)

        view = user.wait(job_id, WAIT)
        assert view.status.state is JobState.CANCELLED, view.to_json()
    wait_until(lambda: not runner.list_step_containers(labels), WAIT, "the step's job gone")
    assert not container_runtime.list_step_containers(labels)


def test_cancelling_a_job_whose_step_waits_in_slurms_queue_leaves_no_batch_job_or_container(
    scenario: Scenario, cluster: SlurmCluster, container_runtime: DockerRuntime
) -> None:
    """Two steps hold both CPUs of the node, so a third job's one-CPU step waits in Slurm's
    queue; that job cancelled there ends cancelled, its batch job is cancelled without
    ever running and no container of it is left, while the other two run on."""
    runner = scenario.site2.site.jobs.ports.environment.runner
    with JobsClient(scenario.site1.internal_url, scenario.site1.party.user, timeout=60) as user:
        holders = [user.submit(scenario.job("hang")).status.job_id for _ in range(2)]
        try:
            for holder in holders:
                wait_until(
                    lambda holder=holder: (
                        list(_batch_jobs_of(cluster, holder).values()) == ["RUNNING"]
                    ),
                    WAIT,
                    "a holding step's batch job running",
                )
            queued = user.submit(scenario.job("hang")).status.job_id
            wait_until(
                lambda: list(_batch_jobs_of(cluster, queued).values()) == ["PENDING"],
                WAIT,
                "the third step's batch job queued",
            )

            user.cancel(queued)

            view = user.wait(queued, WAIT)
            assert view.status.state is JobState.CANCELLED, view.to_json()
            assert list(_batch_jobs_of(cluster, queued).values()) == ["CANCELLED"]
            assert not runner.list_step_containers({LABEL_JOB: queued})
            assert not container_runtime.list_step_containers({LABEL_JOB: queued})
            for holder in holders:
                assert user.status(holder).status.state is JobState.RUNNING
        finally:
            for holder in holders:
                user.cancel(holder)
            for holder in holders:
                user.wait(holder, WAIT)


@pytest.fixture(scope="module")
def processes(
    cluster: SlurmCluster,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProcessScenario]:
    """The scenario on site1/site2 `mahiru serve` processes; site2 runs its steps on the
    cluster, and the sleeper sleeps SLEEP s."""
    root = tmp_path_factory.mktemp("slurm-processes")
    runner = {
        "kind": "slurm",
        "partition": "mahiru",
        "shared_dir": str(root / "shared"),
        "slurm_conf": str(cluster.conf),
    }
    with process_scenario(
        root, container_runtime, scenario_archives, {"runner": runner}, sleep=SLEEP
    ) as running:
        yield running


def _batch_jobs_of(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """The Slurm job id -> state of every batch job a step of Mahiru job `job_id` ran as,
    found by the labels in its comment."""
    listed = cluster.run("squeue", "--noheader", "--states=all", "-o", "%i|%T|%k")
    found = {}
    for line in listed.splitlines():
        slurm_id, state, comment = line.split("|", 2)
        if (labels_of(comment) or {}).get(LABEL_JOB) == job_id:
            found[slurm_id] = state
    return found


def test_a_site_killed_while_its_slurm_job_runs_cancels_it_after_restart_and_the_job_succeeds(
    processes: ProcessScenario,
    cluster: SlurmCluster,
    container_runtime: DockerRuntime,
    tmp_path: Path,
) -> None:
    """SIGKILL site2 while its step's batch job runs: the job keeps running, orphaned; the
    restarted site cancels it (no container of it left), runs the step again, and site1
    gets [1, 34]."""
    site2 = processes.net.sites[SITE2].service
    with processes.client() as client:
        job_id = client.submit(processes.job("sleeper")).status.job_id
        ((old, _),) = wait_until(
            lambda: [j for j in _batch_jobs_of(cluster, job_id).items() if j[1] == "RUNNING"],
            WAIT,
            "the step's batch job running",
            interval=0.2,
        )
        wait_until(
            lambda: only_step(client.status(job_id)).state is StepState.RUNNING,
            WAIT,
            "site1 to see the step running",
        )
        labels = {LABEL_JOB: job_id}
        orphans = wait_until(
            lambda: container_runtime.list_step_containers(labels), WAIT, "the step's container"
        )

        sigkill(site2)
        # Nobody cancelled the batch job: it was orphaned with its site, its container too.
        assert cluster.state(old) == "RUNNING"
        assert container_runtime.list_step_containers(labels)
        restart(site2)

        # The step's second run need not sleep SLEEP s as well: wake it (never the orphan).
        def woken_until_the_job_ends() -> bool:
            wake(container_runtime, labels, but=[c.id for c in orphans])
            return client.status(job_id).status.state.terminal

        wait_until(woken_until_the_job_ends, WAIT, "the job to end", interval=0.5)
        view = client.wait(job_id, WAIT)
        assert view.status.state is JobState.SUCCEEDED, view.to_json()
        step = only_step(view)
        assert step.state is StepState.SUCCEEDED and step.exit_code == 0
        files = client.download_output(job_id, "result", tmp_path)
        assert json.loads((tmp_path / "data.json").read_text()) == [1, 34]
        assert [f.name for f in files] == ["data.json"]
    # Ended by the restarted site's TERM to its task: the script removed its container and
    # exited 143 (a plain scancel would have had srun SIGKILL it first).
    assert cluster.wait_until_finished(old, WAIT) == "FAILED"
    ran = _batch_jobs_of(cluster, job_id)
    assert ran.pop(old) == "FAILED"
    assert list(ran.values()) == ["COMPLETED"]  # the step run again by the restarted site
    assert not container_runtime.list_step_containers(labels)
    assert "removed step containers left by an earlier run" in site2.log.read_text()
