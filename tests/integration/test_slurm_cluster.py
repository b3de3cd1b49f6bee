"""The one-node Slurm cluster of the tests does what the Slurm runner will rely on:
it runs batch jobs, ends a job at its time limit and on scancel, and a job script
that traps Slurm's signal removes the container it started.

These tests run with the others (not `serial`): they use only the private
cluster, wait on job states rather than time, and bound every wait well above
what a loaded machine needs. The time-limit test's job runs 60-90 s, because
Slurm's limits are whole minutes and slurmctld checks them every 30 s: it is
submitted as the module starts, so the other tests run meanwhile, and the test
comes last.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.slurm import FINISHED, ROOT, SlurmCluster, start_cluster
from tests.support.waiting import wait_until

from mahiru.runtime.protocol import COMPUTE_BASE_IMAGE

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

#: Seconds from submission to a running script, with room for a loaded machine.
START_WAIT = 60
#: Seconds from scancel to a finished job.
CANCEL_WAIT = 60
#: Seconds a one-minute job may run before Slurm ends it: the minute, slurmctld's
#: 30 s check, and room for load.
TIME_LIMIT_WAIT = 180

#: Submits a job script (the text after "#!/bin/bash") with sbatch options;
#: returns its job id and the file its output goes to.
Submit = Callable[..., tuple[str, Path]]


@pytest.fixture(scope="module")
def cluster() -> SlurmCluster:
    """The test cluster, started if it is not running."""
    return start_cluster()


def _submit(cluster: SlurmCluster, folder: Path, name: str, body: str, *options: str) -> str:
    """Submit a job script `folder/<name>.sh` (its output to `<name>.out`); its job id."""
    script = folder / f"{name}.sh"
    script.write_text(f"#!/bin/bash\n{body}\n")
    return cluster.submit(
        script,
        f"--job-name=mahiru-test-{name}",
        f"--output={folder / name}.out",
        f"--chdir={folder}",
        "--cpus-per-task=1",
        "--mem=200M",
        *options,
    )


def _cancel_unless_finished(cluster: SlurmCluster, job_id: str) -> None:
    if cluster.state(job_id) not in FINISHED:
        cluster.cancel(job_id)


@pytest.fixture
def submit(cluster: SlurmCluster, tmp_path: Path) -> Iterator[Submit]:
    """Submits job scripts; whatever the test leaves running is cancelled afterwards."""
    submitted: list[str] = []

    def submit_(body: str, *options: str) -> tuple[str, Path]:
        name = f"job{len(submitted)}"
        submitted.append(_submit(cluster, tmp_path, name, body, *options))
        return submitted[-1], tmp_path / f"{name}.out"

    yield submit_
    for job_id in submitted:
        _cancel_unless_finished(cluster, job_id)


@pytest.fixture(scope="module", autouse=True)
def job_over_time(
    cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A job with a one-minute --time limit that would run ten, submitted as the module
    starts: its minute, and the controller's next check, pass while the other tests run.
    Its job id and output file."""
    folder = tmp_path_factory.mktemp("over-time")
    job_id = _submit(cluster, folder, "over-time", "echo started; sleep 600", "--time=1")
    yield job_id, folder / "over-time.out"
    _cancel_unless_finished(cluster, job_id)


@pytest.fixture(scope="module")
def engine() -> str:
    """The container engine's CLI (docker, else podman), with the compute base image."""
    for cli in ("docker", "podman"):
        if shutil.which(cli) and _succeeds(cli, "info"):
            break
    else:
        pytest.skip("no container engine answers; start one with scripts/ensure-engine.sh")
    if not _succeeds(cli, "image", "inspect", COMPUTE_BASE_IMAGE):
        pytest.skip(f"{COMPUTE_BASE_IMAGE} is missing; `make base-images` builds it")
    return cli


def _succeeds(*command: str) -> bool:
    return subprocess.run(command, capture_output=True, timeout=60, check=False).returncode == 0


def _container_running(engine: str, name: str) -> bool:
    inspected = subprocess.run(
        [engine, "container", "inspect", "--format", "{{.State.Running}}", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return inspected.returncode == 0 and inspected.stdout.strip() == "true"


def _container_exists(engine: str, name: str) -> bool:
    return _succeeds(engine, "container", "inspect", name)


def _remove_container(engine: str, name: str) -> None:
    subprocess.run([engine, "rm", "-f", name], capture_output=True, timeout=60, check=False)


def _wait_for_output(output: Path, text: str) -> None:
    wait_until(
        lambda: output.exists() and text in output.read_text(),
        START_WAIT,
        f"{text!r} in {output.name}",
        interval=0.1,
    )


def _documented_job_script() -> str:
    """The job script docs/slurm.md gives for starting a container (its one bash block)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / "slurm.md").read_text(), re.S)
    assert len(blocks) == 1, "docs/slurm.md should have one bash block: the job script"
    return str(blocks[0])


def test_batch_job_runs_and_writes_its_output(cluster: SlurmCluster, submit: Submit) -> None:
    """A submitted batch script runs, completes, and its output file holds what it printed."""
    job_id, output = submit('echo "job $SLURM_JOB_ID ran with $SLURM_CPUS_PER_TASK CPU"')

    assert cluster.wait_until_finished(job_id, START_WAIT) == "COMPLETED"
    assert output.read_text() == f"job {job_id} ran with 1 CPU\n"


def test_scancel_ends_a_running_job(cluster: SlurmCluster, submit: Submit) -> None:
    """scancel of a running job ends it, in state CANCELLED."""
    job_id, output = submit("echo started; sleep 600")
    _wait_for_output(output, "started")

    cluster.cancel(job_id)

    assert cluster.wait_until_finished(job_id, CANCEL_WAIT) == "CANCELLED"


def test_cancelled_job_that_traps_the_signal_leaves_no_container(
    cluster: SlurmCluster, submit: Submit, engine: str
) -> None:
    """The job script of docs/slurm.md, which traps Slurm's TERM and removes its
    container, leaves none running once scancel has ended the job."""
    name = f"mahiru-test-slurm-{uuid.uuid4().hex[:12]}"
    settings = f"ENGINE={engine}\nNAME={name}\nIMAGE={COMPUTE_BASE_IMAGE}\nCOMMAND='sleep 600'\n"
    job_id, output = submit(settings + _documented_job_script())
    try:
        wait_until(lambda: _container_running(engine, name), START_WAIT, f"container {name}")

        cluster.cancel(job_id)

        assert cluster.wait_until_finished(job_id, CANCEL_WAIT) == "CANCELLED"
        assert not _container_exists(engine, name)
        assert f"removed container {name}" in output.read_text()
    finally:
        _remove_container(engine, name)


def test_cancelled_job_without_the_trap_leaves_its_container_running(
    cluster: SlurmCluster, submit: Submit, engine: str
) -> None:
    """Without the trap, a container started in a job outlives the job's scancel: the
    Docker daemon runs it outside the job's cgroup, where Slurm's signals do not reach.
    (The CLI itself passes TERM on to `sleep`, which ignores it as the container's
    first process, and keeps waiting until Slurm's KILL, KillWait (10 s on the test cluster)
    later.)"""
    if engine != "docker":
        pytest.skip("this checks the Docker CLI, whose daemon starts the containers")
    name = f"mahiru-test-slurm-{uuid.uuid4().hex[:12]}"
    job_id, _ = submit(f"exec {engine} run --rm --name {name} {COMPUTE_BASE_IMAGE} sleep 600")
    try:
        wait_until(lambda: _container_running(engine, name), START_WAIT, f"container {name}")

        cluster.cancel(job_id)

        assert cluster.wait_until_finished(job_id, CANCEL_WAIT) == "CANCELLED"
        assert _container_running(engine, name)
    finally:
        _remove_container(engine, name)


def test_job_over_its_time_limit_is_ended_with_timeout(
    cluster: SlurmCluster, job_over_time: tuple[str, Path]
) -> None:
    """A job still running at its --time limit is ended by Slurm, in state TIMEOUT."""
    job_id, output = job_over_time
    _wait_for_output(output, "started")

    assert cluster.wait_until_finished(job_id, TIME_LIMIT_WAIT) == "TIMEOUT"
    assert "DUE TO TIME LIMIT" in output.read_text()
