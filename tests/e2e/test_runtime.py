"""The container runtime against a real engine: images, data, isolated steps."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import docker
import pytest
from tests.support.leaks import LEAK_MARKER, LEAK_VARIANTS

from mahiru.config import ContainerLimits
from mahiru.errors import Conflict, InvalidInput, NotFound, Unavailable
from mahiru.runtime import (
    ContainerInfo,
    ContainerOutcome,
    DockerRuntime,
    ImageConfig,
    StepLimits,
    archives,
    docker_available,
    limits_from_config,
)
from mahiru.runtime.archives import extract_tree
from mahiru.runtime.assets import DATA_BASE_IMAGE, INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET
from mahiru.runtime.space import margin_bytes

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
LIMITS = StepLimits(cpus=1.0, memory_bytes=256 * MIB, timeout_seconds=60, max_output_bytes=MIB)


def data_dir(root: Path, files: dict[str, str]) -> Path:
    """A folder holding `files` (relative path -> text)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def tar_stream(*members: tuple[tarfile.TarInfo, bytes]) -> list[bytes]:
    """An in-memory tar archive, as the one chunk an engine might send."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, content in members:
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return [buffer.getvalue()]


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def run(
    runtime: DockerRuntime,
    image: str,
    tmp_path: Path,
    labels: dict[str, str],
    *,
    inputs: dict[str, Path] | None = None,
    limits: StepLimits = LIMITS,
) -> ContainerOutcome:
    return runtime.run_step(
        image, inputs or {}, ["output0"], limits, output_dir=tmp_path / "out", labels=labels
    )


def _hang_in_thread(
    runtime: DockerRuntime,
    probe_images: dict[str, str],
    labels: dict[str, str],
    tmp_path: Path,
    results: list[ContainerOutcome],
) -> tuple[threading.Thread, list[ContainerInfo]]:
    """Run the hanging probe in a thread (its outcome goes to `results`); the thread and the
    step's container, once it runs (the engine lists it while it is still being made)."""
    runner = threading.Thread(
        target=lambda: results.append(run(runtime, probe_images["hang"], tmp_path, labels))
    )
    runner.start()
    deadline = time.monotonic() + 20
    while not (found := runtime.list_step_containers(labels)):
        assert time.monotonic() < deadline, "the step container never appeared"
        time.sleep(0.05)
    while "sleeping" not in runtime.step_log(found[0].id):
        assert time.monotonic() < deadline, "the step never ran"
        time.sleep(0.05)
    return runner, found


# -- images and data -----------------------------------------------------------------


def test_save_and_load_round_trip(container_runtime: DockerRuntime, tmp_path: Path) -> None:
    """An image saved to an archive, removed and loaded again has the same id and data."""
    files = data_dir(tmp_path / "files", {"a.txt": "alpha", "sub/b.txt": "beta"})
    image = container_runtime.build_data_image(DATA_BASE_IMAGE, files)
    archive = tmp_path / "archives" / "image.tar"
    container_runtime.save_image(image, archive)
    assert [p.name for p in archive.parent.iterdir()] == ["image.tar"], "no temporary files left"
    container_runtime.remove_image(image)
    assert not container_runtime.has_image(image)

    assert container_runtime.load_image(archive) == image
    container_runtime.extract_data(image, tmp_path / "copy")
    assert (tmp_path / "copy" / "a.txt").read_text() == "alpha"
    assert (tmp_path / "copy" / "sub" / "b.txt").read_text() == "beta"
    container_runtime.remove_image(image)


def test_load_rejects_a_file_that_is_not_an_image_archive(
    container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """Loading garbage is InvalidInput; loading a missing file is NotFound."""
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(InvalidInput):
        container_runtime.load_image(garbage)
    with pytest.raises(NotFound):
        container_runtime.load_image(tmp_path / "missing.tar")


def test_build_data_image_replaces_clashing_files_and_keeps_the_rest(
    container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """Outputs on an output base with /data content: same names replaced, others kept."""
    base = container_runtime.build_data_image(
        DATA_BASE_IMAGE, data_dir(tmp_path / "base", {"a.txt": "old", "keep.txt": "kept"})
    )
    image = container_runtime.build_data_image(
        base, data_dir(tmp_path / "new", {"a.txt": "new"}), labels={"x": "y"}
    )
    container_runtime.extract_data(image, tmp_path / "result")
    assert (tmp_path / "result" / "a.txt").read_text() == "new"
    assert (tmp_path / "result" / "keep.txt").read_text() == "kept"
    container_runtime.remove_image(image)
    container_runtime.remove_image(base)


def test_extract_data_refuses_an_image_with_a_link_out_of_data(
    container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """A /data symlink to /etc/passwd is rejected, and nothing is extracted."""
    client = docker.from_env()
    container = client.containers.create(DATA_BASE_IMAGE, name=f"mahiru-test-link-{tmp_path.name}")
    try:
        container.put_archive(
            "/", tar_stream((entry("data/passwd", tarfile.SYMTYPE, "/etc/passwd"), b""))[0]
        )
        image = container.commit().id
    finally:
        container.remove(force=True)
    try:
        with pytest.raises(InvalidInput, match="passwd"):
            container_runtime.extract_data(image, tmp_path / "out")
        assert not (tmp_path / "out").exists()
        assert list(tmp_path.iterdir()) == [], "no partial extraction left"
    finally:
        container_runtime.remove_image(image)


def test_extract_data_of_an_image_without_data_is_not_found(
    container_runtime: DockerRuntime, probe_images: dict[str, str], tmp_path: Path
) -> None:
    """A compute image has no /data: NotFound, and no scratch container remains."""
    with pytest.raises(NotFound, match="/data"):
        container_runtime.extract_data(probe_images["fail"], tmp_path / "out")


@pytest.mark.parametrize(
    "member",
    [
        entry("data/../evil.txt"),
        entry("/data/evil.txt"),
        entry("etc/evil.txt"),
        entry("data/link", tarfile.SYMTYPE, "../../outside"),
        entry("data/link", tarfile.SYMTYPE, "/etc/passwd"),
        entry("data/hard", tarfile.LNKTYPE, "etc/passwd"),
        entry("data/device", tarfile.CHRTYPE),
        entry("data/fifo", tarfile.FIFOTYPE),
    ],
    ids=[
        "dotdot",
        "absolute",
        "outside-prefix",
        "symlink-up",
        "symlink-abs",
        "hardlink",
        "chr",
        "fifo",
    ],
)
@pytest.mark.parametrize("data_filter", [True, False], ids=["filter", "by-hand"])
def test_extract_tree_rejects_unsafe_members(
    tmp_path: Path, member: tarfile.TarInfo, data_filter: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crafted archives cannot write outside the destination or create devices.

    Both ways are checked: tarfile's data filter, and the rules applied by
    hand on Pythons before 3.11.4 (Debian bookworm's, in the service images).
    """
    monkeypatch.setattr(archives, "HAS_DATA_FILTER", data_filter)
    chunks = tar_stream(
        (entry("data", tarfile.DIRTYPE), b""), (entry("data/ok.txt"), b"ok"), (member, b"")
    )
    with pytest.raises(InvalidInput):
        extract_tree(chunks, tmp_path / "dest" / "out", prefix="data")
    assert list((tmp_path / "dest").iterdir()) == [], "nothing half-extracted is left"
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("data_filter", [True, False], ids=["filter", "by-hand"])
def test_extract_tree_keeps_links_inside_the_destination(
    tmp_path: Path, data_filter: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative symlinks and hard links that stay inside are fine."""
    monkeypatch.setattr(archives, "HAS_DATA_FILTER", data_filter)
    chunks = tar_stream(
        (entry("data", tarfile.DIRTYPE), b""),
        (entry("data/sub", tarfile.DIRTYPE), b""),
        (entry("data/sub/a.txt"), b"a"),
        (entry("data/link", tarfile.SYMTYPE, "sub/a.txt"), b""),
        (entry("data/hard", tarfile.LNKTYPE, "data/sub/a.txt"), b""),
    )
    extract_tree(chunks, tmp_path / "out", prefix="data")
    assert (tmp_path / "out" / "link").read_text() == "a"
    assert (tmp_path / "out" / "hard").read_text() == "a"


# -- the scenario ----------------------------------------------------------------------


def test_minmax_asset_on_the_scenario_input_gives_1_and_34(
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """Load the three asset archives, run the step, build the result image, read it back."""
    data = container_runtime.load_image(scenario_archives[INPUT_ASSET])
    compute = container_runtime.load_image(scenario_archives[MINMAX_ASSET])
    output_base = container_runtime.load_image(scenario_archives[OUTPUT_BASE_ASSET])
    container_runtime.extract_data(data, tmp_path / "input0")
    scenario_input = json.loads((tmp_path / "input0" / "data.json").read_text())
    assert scenario_input == [1, 21, 2, 8, 5, 3, 13, 1, 34]

    result = container_runtime.run_step(
        compute,
        {"input0": tmp_path / "input0"},
        ["output0"],
        LIMITS,
        output_dir=tmp_path / "outputs",
        labels=step_labels,
    )
    assert result.succeeded, result
    assert result.exit_code == 0
    assert result.outputs == {"output0": tmp_path / "outputs" / "output0"}

    image = container_runtime.build_data_image(output_base, result.outputs["output0"])
    container_runtime.extract_data(image, tmp_path / "result")
    assert [p.name for p in (tmp_path / "result").iterdir()] == ["data.json"]
    assert json.loads((tmp_path / "result" / "data.json").read_text()) == [1, 34]
    container_runtime.remove_image(image)


def test_minmax_asset_fails_clearly_on_bad_input(
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """Input that is not a list of numbers: exit code 2 and the reason in the log tail."""
    compute = container_runtime.load_image(scenario_archives[MINMAX_ASSET])
    bad = data_dir(tmp_path / "input0", {"data.json": '["one", 2]'})
    result = run(container_runtime, compute, tmp_path, step_labels, inputs={"input0": bad})
    assert not result.succeeded
    assert result.exit_code == 2
    assert any("not a finite number" in line for line in result.log_tail)


# -- failing steps ----------------------------------------------------------------------


def test_failing_step_reports_exit_code_and_log_tail(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """Exit 3: a failed result (not an exception) with the code and the last log lines."""
    result = run(container_runtime, probe_images["fail"], tmp_path, step_labels)
    assert not result.succeeded
    assert result.exit_code == 3
    assert "code 3" in result.reason
    assert not result.timed_out and not result.oom_killed
    # stdout and stderr reach the log through separate pipes: their order may vary.
    assert len(result.log_tail) == 50
    assert {"failing on purpose", "line 100"} <= set(result.log_tail)
    assert "line 50" not in result.log_tail
    assert result.outputs == {}
    assert not (tmp_path / "out" / "output0").exists()


@pytest.mark.serial  # times the kill: a loaded engine would blur it
def test_hanging_step_is_killed_at_its_timeout(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """A step that never ends is killed after its time limit and its container removed."""
    limits = StepLimits(cpus=1, memory_bytes=64 * MIB, timeout_seconds=2, max_output_bytes=MIB)
    started = time.monotonic()
    result = run(container_runtime, probe_images["hang"], tmp_path, step_labels, limits=limits)
    elapsed = time.monotonic() - started
    assert not result.succeeded
    assert result.timed_out
    assert "2 s limit" in result.reason
    assert 2 <= elapsed < 2 + 5
    assert result.log_tail == ("sleeping",)
    assert container_runtime.list_step_containers(step_labels) == []


def test_step_has_no_network(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """Only a loopback interface: connecting to a port open on the host's 127.0.0.1 fails."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        inputs = {"input0": data_dir(tmp_path / "input0", {"port": str(port)})}
        result = run(
            container_runtime, probe_images["network"], tmp_path, step_labels, inputs=inputs
        )
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert not result.succeeded
    assert result.exit_code == 4
    assert "interfaces: ['lo']" in result.log_tail
    assert any(line.startswith("connect failed:") for line in result.log_tail)


def test_too_large_output_fails_and_leaves_nothing(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """3 MiB written against a 1 MiB limit: failed, and the output directory is gone."""
    result = run(container_runtime, probe_images["huge"], tmp_path, step_labels)
    assert not result.succeeded
    # It writes fast: measured after its clean exit, or caught and stopped in the act.
    assert result.exit_code in (0, 137)
    assert "exceeds its limit" in result.reason
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.serial  # fills a file system, sampling its size as it grows
def test_a_step_cannot_write_more_than_its_limit_at_any_time(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """Writing 3 x 64 MiB: stopped while it writes, the host never holding more than the
    limit plus the margin, and nothing left afterwards."""
    limit = 64 * MIB
    limits = StepLimits(cpus=1, memory_bytes=64 * MIB, timeout_seconds=60, max_output_bytes=limit)
    space = tmp_path / "outputs"
    peak = 0
    done = threading.Event()

    def on_host() -> int:
        image = space.with_name(space.name + ".fs")
        try:  # the sparse file holding the bounded file system, if one is mounted
            return image.stat().st_blocks * 512
        except FileNotFoundError:
            return sum(f.stat().st_size for f in space.rglob("*") if f.is_file())

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            with contextlib.suppress(OSError):
                peak = max(peak, on_host())

    sampler = threading.Thread(target=sample)
    with container_runtime.output_space(space, limit) as bounded:
        sampler.start()
        try:
            result = container_runtime.run_step(
                probe_images["flood"], {}, ["output0"], limits, output_dir=space,
                labels=step_labels,
            )  # fmt: skip
        finally:
            done.set()
            sampler.join()
    assert bounded  # this machine mounts a size-bounded file system
    assert not result.succeeded
    assert "exceeds its limit" in result.reason, result.reason
    assert "stopped while it ran" in result.reason, result.reason
    assert 0 < peak <= limit + margin_bytes(limit), peak
    assert not space.exists() and not space.with_name("outputs.fs").exists()


def test_output_with_a_symlink_fails(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """Only regular files and directories count as output; the reason counts, never names."""
    result = run(container_runtime, probe_images["symlink"], tmp_path, step_labels)
    assert not result.succeeded
    assert result.reason == (
        "output output0 holds 1 entries that are not regular files or directories"
        " (links, pipes, sockets and devices are not output)"
    )
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("variant", LEAK_VARIANTS)
def test_a_step_chosen_output_name_never_reaches_the_reason(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
    variant: str,
) -> None:
    """A link, pipe, socket or folder link named with ~4 KiB of data (or non-UTF-8 bytes)
    fails the step with a fixed text: nothing the step wrote in the name is in the reason."""
    result = run(container_runtime, probe_images[f"leak {variant}"], tmp_path, step_labels)
    assert not result.succeeded
    assert LEAK_MARKER not in result.reason and "SECRET" not in result.reason
    assert "holds 1 entries that are not regular files" in result.reason, result.reason
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.serial  # drives a container into its memory limit
def test_memory_hog_is_oom_killed(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """A step allocating past its memory limit (no swap) is killed and reported as such."""
    limits = StepLimits(cpus=1, memory_bytes=64 * MIB, timeout_seconds=60, max_output_bytes=MIB)
    result = run(container_runtime, probe_images["hog"], tmp_path, step_labels, limits=limits)
    assert not result.succeeded
    assert result.oom_killed, result
    assert "64 MiB memory limit" in result.reason
    assert result.exit_code == 137


@pytest.mark.serial  # drives a container into its memory limit
def test_an_oom_kill_the_engine_learns_of_after_the_exit_is_still_reported(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Docker on cgroup v2 may record the exit of an OOM-killed container before the OOM
    notice, and say OOMKilled false (seen as a flaky failure here): the runtime then asks
    the engine's events, and still reports the step as killed for its memory."""
    final_state = DockerRuntime._final_state

    def exit_recorded_first(self: DockerRuntime, container: str) -> tuple[object, str]:
        state, logs = final_state(self, container)
        if state is not None:
            state["OOMKilled"] = False  # as the engine says when it lost the race
        return state, logs

    monkeypatch.setattr(DockerRuntime, "_final_state", exit_recorded_first)
    limits = StepLimits(cpus=1, memory_bytes=64 * MIB, timeout_seconds=60, max_output_bytes=MIB)
    result = run(container_runtime, probe_images["hog"], tmp_path, step_labels, limits=limits)
    assert result.oom_killed, result
    assert result.exit_code == 137 and "64 MiB memory limit" in result.reason


def test_a_step_killed_by_someone_else_is_not_called_out_of_memory(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """A step container SIGKILLed outside the runtime (an operator's `docker kill`) fails
    with its exit code: no OOM event exists, so it is not blamed on its memory."""
    results: list[ContainerOutcome] = []
    runner, found = _hang_in_thread(container_runtime, probe_images, step_labels, tmp_path, results)
    docker.from_env().api.kill(found[0].id)
    runner.join(timeout=30)
    assert results and not results[0].succeeded
    assert results[0].exit_code == 137 and not results[0].oom_killed
    assert "memory" not in results[0].reason and "137" in results[0].reason, results[0].reason


def test_image_whose_program_is_missing_fails_its_step(
    container_runtime: DockerRuntime, step_labels: dict[str, str], tmp_path: Path
) -> None:
    """A compute image the engine cannot start is a failed step, not an exception."""
    image = container_runtime.build_image(
        DATA_BASE_IMAGE, {}, config=ImageConfig(cmd=("/no/such/program",))
    )
    try:
        result = run(container_runtime, image, tmp_path, step_labels)
    finally:
        container_runtime.remove_image(image)
    assert not result.succeeded
    assert "could not start" in result.reason and "/no/such/program" not in result.reason
    assert result.exit_code is None
    assert list((tmp_path / "out").iterdir()) == []


def test_stopping_a_step_container_cancels_the_step(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """An orchestrator finds a running step by its labels and stops it; the run ends cancelled."""
    results: list[ContainerOutcome] = []
    runner, found = _hang_in_thread(container_runtime, probe_images, step_labels, tmp_path, results)
    assert found[0].labels["mahiru.role"] == "step"
    container_runtime.stop_container(found[0].id)
    runner.join(timeout=20)
    assert results and not results[0].succeeded
    assert "cancelled" in results[0].reason
    container_runtime.stop_container(found[0].id)  # idempotent


@pytest.mark.serial  # interrupts a process using the engine
def test_interrupted_run_removes_its_container_and_outputs(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    """Ctrl-C (KeyboardInterrupt) while a step runs: the container and outputs are gone."""
    script = (
        # Ctrl-C as in a terminal, whatever SIGINT disposition this process passes on.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import faulthandler; faulthandler.register(signal.SIGUSR1)\n"
        "import json, sys\n"
        "from pathlib import Path\n"
        "from mahiru.runtime import DockerRuntime, StepLimits\n"
        "limits = StepLimits(cpus=1, memory_bytes=64 << 20, timeout_seconds=60,"
        " max_output_bytes=1 << 20)\n"
        "DockerRuntime().run_step(sys.argv[1], {}, ['output0'], limits,"
        " output_dir=Path(sys.argv[2]), labels=json.loads(sys.argv[3]))\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            probe_images["hang"],
            str(tmp_path / "out"),
            json.dumps(step_labels),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupted while the step runs: once its container is running (not while the
        # engine is still creating or starting it).
        deadline = time.monotonic() + 30
        while not [
            c for c in container_runtime.list_step_containers(step_labels) if c.status == "running"
        ]:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the step container never ran"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=60)  # generous: a loaded engine is slow
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # the child dumps its threads' stacks
            _, stderr = process.communicate(timeout=10)
            raise AssertionError(f"no exit 60 s after Ctrl-C; its stacks:\n{stderr}") from None
    finally:
        if process.poll() is None:
            process.kill()
    assert "KeyboardInterrupt" in stderr
    assert container_runtime.list_step_containers(step_labels) == []
    assert list((tmp_path / "out").iterdir()) == []


# -- isolation ---------------------------------------------------------------------------


@pytest.fixture
def isolation_report(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    step_labels: dict[str, str],
    tmp_path: Path,
) -> dict[str, object]:
    """What a step container finds out about its own confinement."""
    inputs = {"input0": data_dir(tmp_path / "input0", {"data.json": "[1, 2]"})}
    limits = StepLimits(
        cpus=0.5, memory_bytes=128 * MIB, timeout_seconds=60, max_output_bytes=MIB, pids=64
    )
    result = run(
        container_runtime,
        probe_images["isolation"],
        tmp_path,
        step_labels,
        inputs=inputs,
        limits=limits,
    )
    assert result.succeeded, result
    assert (tmp_path / "input0" / "data.json").read_text() == "[1, 2]"
    assert sorted(p.name for p in (tmp_path / "input0").iterdir()) == ["data.json"]
    report: dict[str, object] = json.loads((result.outputs["output0"] / "report.json").read_text())
    return report


def test_inputs_are_read_only(isolation_report: dict[str, object]) -> None:
    """Creating, changing or removing input files fails with EROFS; the input is readable."""
    assert isolation_report["input"] == "[1, 2]"
    assert isolation_report["write_input_new"] == "EROFS"
    assert isolation_report["write_input_existing"] == "EROFS"
    assert isolation_report["remove_input"] == "EROFS"


def test_step_runs_unprivileged_on_a_read_only_root(isolation_report: dict[str, object]) -> None:
    """Non-root, no capabilities, no new privileges, read-only /, writable /tmp, only lo."""
    assert isolation_report["uid"] == 65534 and isolation_report["gid"] == 65534
    assert isolation_report["cap_eff"] == "0000000000000000"
    assert isolation_report["no_new_privs"] == "1"
    assert isolation_report["write_root"] == "EROFS"
    assert isolation_report["write_tmp"] is None
    assert isolation_report["interfaces"] == ["lo"]


def test_step_gets_its_cpu_memory_and_process_limits(isolation_report: dict[str, object]) -> None:
    """The cgroup limits inside the container are the StepLimits."""
    assert isolation_report["memory_limit"] == str(128 * MIB)
    assert isolation_report["pids_max"] == "64"
    quota, period = str(isolation_report["cpu"]).split()
    assert int(quota) / int(period) == 0.5


# -- interface details ---------------------------------------------------------------------


def test_existing_non_empty_output_directory_is_a_conflict(
    container_runtime: DockerRuntime, probe_images: dict[str, str], tmp_path: Path
) -> None:
    """A leftover output of an earlier attempt is never overwritten silently."""
    data_dir(tmp_path / "out" / "output0", {"old.txt": "old"})
    with pytest.raises(Conflict):
        run(container_runtime, probe_images["fail"], tmp_path, {})
    assert (tmp_path / "out" / "output0" / "old.txt").read_text() == "old"


def test_bad_step_arguments_are_invalid_input(
    container_runtime: DockerRuntime, probe_images: dict[str, str], tmp_path: Path
) -> None:
    """Unsafe input/output names and missing input folders are the caller's mistake."""
    with pytest.raises(InvalidInput):
        container_runtime.run_step(
            probe_images["fail"], {}, ["../x"], LIMITS, output_dir=tmp_path / "out"
        )
    with pytest.raises(NotFound):
        container_runtime.run_step(
            probe_images["fail"], {"input0": tmp_path / "nope"}, [], LIMITS, output_dir=tmp_path
        )


def test_limits_come_from_the_site_configuration() -> None:
    """ContainerLimits (MB, whole seconds) map to StepLimits (bytes)."""
    limits = limits_from_config(
        ContainerLimits(cpus=2, memory_mb=512, timeout_seconds=30, max_output_mb=10)
    )
    assert limits == StepLimits(
        cpus=2, memory_bytes=512 * MIB, timeout_seconds=30, max_output_bytes=10 * MIB
    )
    assert limits.nano_cpus == 2_000_000_000
    with pytest.raises(InvalidInput):
        StepLimits(cpus=0, memory_bytes=MIB, timeout_seconds=0, max_output_bytes=-1)


def test_an_unreachable_engine_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """No engine at DOCKER_HOST: operations raise Unavailable, the probe says False."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert not docker_available(timeout=1)
    runtime = DockerRuntime(timeout=2)
    with pytest.raises(Unavailable, match="not available"):
        runtime.has_image(DATA_BASE_IMAGE)
