"""The step-runner contract: what the site relies on from whatever runs its steps, checked
against each real runner, the container engine (`docker`) and the Slurm cluster (`slurm`).

A runner runs a step and hands back its output and exit code; reports a failing step's
exit code and log; shows the log while the step runs; ends a step at its time limit,
and one over its memory, saying so; cancels a step so that no container is left; and,
re-created as a restarted site re-creates it, still lists the steps it runs.

The Slurm runner's steps run the same engine's containers on the cluster's one node
(this machine), so what is left behind is checked on that engine for both runners.
Every wait is bounded; no test waits for Slurm's own 30-s kill or minute-long limits.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
from tests.e2e.conftest import SESSION_ID, SESSION_LABEL
from tests.support.slurm import start_cluster
from tests.support.waiting import wait_until

from mahiru.runtime import ContainerInfo, ContainerOutcome, DockerRuntime, ImageConfig, StepLimits
from mahiru.runtime.assets import COMPUTE_BASE_IMAGE
from mahiru.runtime.runner import StepRunner
from mahiru.runtime.slurm_runner import SlurmRunner, SlurmSettings

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
LIMITS = StepLimits(cpus=1.0, memory_bytes=128 * MIB, timeout_seconds=60, max_output_bytes=MIB)
#: Seconds a step may take to start and show itself (a Slurm job is queued first).
START_WAIT = 60.0
#: Seconds a step that should end (it was cancelled, or its limit passed) may take to.
END_WAIT = 60.0

#: The steps' programs, by name: shell, as the compute base image has it.
PROGRAMS = {
    "copy": "cat /mahiru/inputs/input0/text > /mahiru/outputs/output0/copied;"
    " echo copied $(cat /mahiru/inputs/input0/text)",
    "fail": "for i in $(seq 1 30); do echo line $i; done; echo failing on purpose >&2; exit 3",
    "hang": "echo started; exec sleep 600",
    "tick": "echo one; sleep 3; echo two",
    "hog": "python3 -c 'import time\nx = []\nwhile True: x.append(bytearray(16 << 20))'",
}


@dataclass
class Bench:
    """A runner under test, the folder its steps' files go in, and how to make a new one of
    the same settings (as a restarted site does)."""

    runner: StepRunner
    work: Path
    renew: Callable[[], StepRunner]
    labels: dict[str, str] = field(default_factory=dict)

    def run(self, image: str, *, limits: StepLimits = LIMITS, name: str | None = None) -> Run:
        """Start the step in a thread; its `Run`."""
        inputs = self.work / f"in-{uuid.uuid4().hex[:8]}" / "input0"
        inputs.mkdir(parents=True)
        (inputs / "text").write_text("hello")
        output_dir = inputs.parent / "outputs"
        started = Run(name or f"mahiru-step-{uuid.uuid4().hex[:12]}")

        def work() -> None:
            started.outcome = self.runner.run_step(
                image,
                {"input0": inputs},
                ["output0"],
                limits,
                output_dir=output_dir,
                name=started.name,
                labels=self.labels,
            )

        started.thread = threading.Thread(target=work, daemon=True)
        started.thread.start()
        return started

    def listed(self) -> ContainerInfo:
        """The one step of this test the runner lists, once it does."""
        found = wait_until(
            lambda: self.runner.list_step_containers(self.labels), START_WAIT, "the step listed"
        )
        assert len(found) == 1
        return found[0]


@dataclass
class Run:
    """A step running in a thread, and its outcome once it has ended."""

    name: str
    thread: threading.Thread | None = None
    outcome: ContainerOutcome | None = None

    def result(self, timeout: float = START_WAIT + END_WAIT) -> ContainerOutcome:
        """The step's outcome, waiting at most `timeout` seconds for it."""
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the step did not end within {timeout} s"
        assert self.outcome is not None, "the step raised instead of returning an outcome"
        return self.outcome


@pytest.fixture(scope="module")
def images(container_runtime: DockerRuntime) -> Iterator[dict[str, str]]:
    """An image per program, on the engine both runners' steps run on."""
    built = {
        name: container_runtime.build_image(
            COMPUTE_BASE_IMAGE,
            {},
            # No session label: a container inherits its image's labels, and the check
            # after each test takes only containers given that label as they were made.
            config=ImageConfig(cmd=("sh", "-c", script)),
        )
        for name, script in PROGRAMS.items()
    }
    yield built
    for image in built.values():
        container_runtime.remove_image(image)


@pytest.fixture(params=["docker", pytest.param("slurm", marks=pytest.mark.slurm)])
def bench(
    request: pytest.FixtureRequest, container_runtime: DockerRuntime, tmp_path: Path
) -> Iterator[Bench]:
    """Each runner in turn; afterwards no step of the test is left listed or running."""
    labels = {SESSION_LABEL: SESSION_ID, "mahiru.job": f"job-{uuid.uuid4().hex[:8]}"}
    tmp_path.chmod(0o755)  # the steps' user reads its inputs below it
    if request.param == "docker":
        bench = Bench(container_runtime, tmp_path, lambda: DockerRuntime(), labels)
    else:
        bench = _slurm_bench(tmp_path, labels)
    yield bench
    left = bench.runner.list_step_containers(labels)
    for step in left:
        bench.runner.stop_container(step.id)
    assert not left, f"steps left running: {[step.name for step in left]}"


def _slurm_bench(work: Path, labels: dict[str, str]) -> Bench:
    """A Slurm runner on the test cluster (started if it is not running)."""
    cluster = start_cluster()
    settings = SlurmSettings(
        partition="mahiru",
        shared_dir=work,
        slurm_conf=cluster.conf,
        cancel_wait_seconds=END_WAIT,
    )
    return Bench(SlurmRunner(settings), work, lambda: SlurmRunner(settings), labels)


def _no_container(engine: DockerRuntime, labels: dict[str, str]) -> None:
    """No container of the step is left on the engine."""
    assert engine.list_step_containers(labels) == []


def test_a_step_runs_and_hands_back_its_output_and_exit_code(
    bench: Bench, images: dict[str, str], container_runtime: DockerRuntime
) -> None:
    """A step reads its input, writes its output and exits 0: it succeeded, its output is
    in the output folder, its log says what it printed, and its container is removed
    (by the Slurm job's script just after the step's end was reported)."""
    outcome = bench.run(images["copy"]).result()

    assert outcome.succeeded, outcome.reason
    assert outcome.exit_code == 0
    assert (outcome.outputs["output0"] / "copied").read_text() == "hello"
    assert outcome.log_tail == ("copied hello",)
    wait_until(
        lambda: not container_runtime.list_step_containers(bench.labels),
        END_WAIT,
        "the step's container removed",
    )


def test_a_failing_step_reports_its_exit_code_and_log(
    bench: Bench, images: dict[str, str], container_runtime: DockerRuntime
) -> None:
    """A step that exits 3 failed with that code, the end of its log (stdout and stderr) is
    reported, and it leaves no output and no container."""
    run = bench.run(images["fail"])
    outcome = run.result()

    assert not outcome.succeeded
    assert outcome.exit_code == 3
    assert outcome.reason == "the step exited with code 3"
    assert "failing on purpose" in outcome.log_tail
    assert "line 30" in outcome.log_tail
    assert outcome.outputs == {}
    _no_container(container_runtime, bench.labels)


def test_the_log_of_a_running_step_can_be_read_while_it_runs(
    bench: Bench, images: dict[str, str]
) -> None:
    """What a step printed is there to read while it still runs."""
    run = bench.run(images["hang"])
    step = bench.listed()

    wait_until(lambda: "started" in bench.runner.step_log(step.id), START_WAIT, "the log")
    assert run.thread is not None and run.thread.is_alive()
    bench.runner.stop_container(step.id)
    run.result()


def test_a_step_s_log_is_read_on_from_an_offset_while_it_runs_and_a_while_after(
    bench: Bench, images: dict[str, str]
) -> None:
    """What a follower reads: the log from where it was, while the step runs and after it
    ended (its container or job already gone), so the last line is not lost."""
    run = bench.run(images["tick"])
    step = bench.listed()
    first = wait_until(lambda: bench.runner.step_output(step.id, 0), START_WAIT, "the first line")
    assert first == b"one\n"
    assert run.result().succeeded
    assert bench.runner.step_output(step.id, len(first)) == b"two\n"
    assert bench.runner.step_output(step.id, 0) == b"one\ntwo\n"
    assert bench.runner.step_output("no-such-step", 0) is None


def test_a_cancelled_step_stops_and_leaves_no_container(
    bench: Bench, images: dict[str, str], container_runtime: DockerRuntime
) -> None:
    """Cancelling a running step ends it, reported as cancelled, and once the cancel has
    returned no container of it is left."""
    run = bench.run(images["hang"])
    step = bench.listed()
    wait_until(lambda: "started" in bench.runner.step_log(step.id), START_WAIT, "the step started")

    bench.runner.stop_container(step.id)

    _no_container(container_runtime, bench.labels)
    outcome = run.result(END_WAIT)
    assert not outcome.succeeded
    assert outcome.reason == "the step was cancelled (its container was stopped)"
    assert bench.runner.list_step_containers(bench.labels) == []


@pytest.mark.parametrize("after", [0.0, 0.15, 0.4])
def test_a_step_cancelled_as_it_starts_leaves_no_container(
    bench: Bench, images: dict[str, str], container_runtime: DockerRuntime, after: float
) -> None:
    """A cancel as soon as the step is listed (its container being made, or about to be):
    the step ends cancelled, and no container of it is left then or a moment later (a
    client stopped while it asked the engine for the container must not leave one)."""
    run = bench.run(images["hang"])
    step = bench.listed()
    time.sleep(after)

    bench.runner.stop_container(step.id)

    _no_container(container_runtime, bench.labels)
    outcome = run.result(END_WAIT)
    assert not outcome.succeeded
    time.sleep(1.0)  # what the engine was still making would be there by now
    _no_container(container_runtime, bench.labels)
    assert docker.from_env().api.containers(all=True, filters={"name": run.name}) == []


def test_a_step_over_its_time_limit_is_ended_for_it(
    bench: Bench, images: dict[str, str], container_runtime: DockerRuntime
) -> None:
    """A step still running at its time limit is ended then, and says so."""
    limits = StepLimits(cpus=1.0, memory_bytes=128 * MIB, timeout_seconds=2, max_output_bytes=MIB)

    outcome = bench.run(images["hang"], limits=limits).result()

    assert outcome.timed_out
    assert outcome.reason == "the step ran longer than its 2 s limit and was killed"
    assert outcome.duration_seconds >= 2
    _no_container(container_runtime, bench.labels)


def test_a_step_over_its_memory_limit_is_killed_for_it(
    bench: Bench, images: dict[str, str], container_runtime: DockerRuntime
) -> None:
    """A step that takes more memory than its limit is killed, and the reason says so."""
    limits = StepLimits(cpus=1.0, memory_bytes=64 * MIB, timeout_seconds=60, max_output_bytes=MIB)

    outcome = bench.run(images["hog"], limits=limits).result()

    assert outcome.oom_killed
    assert outcome.reason == "the step exceeded its 64 MiB memory limit and was killed"
    _no_container(container_runtime, bench.labels)


def test_a_new_runner_finds_the_running_step_as_a_restarted_site_does(
    bench: Bench, images: dict[str, str], container_runtime: DockerRuntime
) -> None:
    """A runner made anew (the site restarted) lists the step an earlier one started, by its
    labels, and can cancel it."""
    run = bench.run(images["hang"])
    first = bench.listed()

    renewed = bench.renew()
    (found,) = renewed.list_step_containers(bench.labels)
    assert (found.id, found.name) == (first.id, run.name)
    assert found.labels[SESSION_LABEL] == SESSION_ID
    renewed.stop_container(found.id)

    _no_container(container_runtime, bench.labels)
    assert not run.result(END_WAIT).succeeded


@pytest.mark.slurm
def test_a_step_cancelled_while_queued_never_starts_a_container(
    images: dict[str, str], container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """Slurm only (the engine queues nothing): while one step holds every CPU of the node, a
    second waits in the queue; cancelled there, it ends as cancelled and no container of it
    ever runs, and the first runs on untouched."""
    tmp_path.chmod(0o755)
    cluster = start_cluster()
    labels = {SESSION_LABEL: SESSION_ID, "mahiru.job": f"job-{uuid.uuid4().hex[:8]}"}
    bench = _slurm_bench(tmp_path, labels)
    whole_node = StepLimits(
        cpus=2.0, memory_bytes=128 * MIB, timeout_seconds=60, max_output_bytes=MIB
    )
    holder = bench.run(images["hang"], limits=whole_node)
    (first,) = wait_until(lambda: bench.runner.list_step_containers(labels), START_WAIT, "listed")
    wait_until(lambda: "started" in bench.runner.step_log(first.id), START_WAIT, "the first step")
    try:
        queued = bench.run(images["hang"])
        (second,) = wait_until(
            lambda: [s for s in bench.runner.list_step_containers(labels) if s.id != first.id],
            START_WAIT,
            "the second step listed",
        )
        assert cluster.state(second.id) == "PENDING"

        bench.runner.stop_container(second.id)

        outcome = queued.result(END_WAIT)
        assert not outcome.succeeded
        assert outcome.reason == "the step was cancelled (its container was stopped)"
        names = [c.name for c in container_runtime.list_step_containers(labels)]
        assert queued.name not in names
        assert "started" not in bench.runner.step_log(second.id)
        assert [s.id for s in bench.runner.list_step_containers(labels)] == [first.id]
    finally:
        bench.runner.stop_container(first.id)
    assert not holder.result(END_WAIT).succeeded
    assert bench.runner.list_step_containers(labels) == []
