"""The fake container runtime keeps the promises of the `ContainerRuntime` protocol that the
job path relies on (so the fast job tests test the job path, not the fake)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tests.support.fake_runtime import FakeRuntime, Programs, StepRun, archive_of
from tests.support.images import add_file, tar_bytes

from mahiru.errors import InvalidInput, NotFound, Unavailable
from mahiru.runtime.limits import MIB, StepLimits
from mahiru.runtime.protocol import DATA_BASE_IMAGE, ContainerRuntime
from mahiru.runtime.steps import LABEL_JOB, LABEL_ROLE, ROLE_STEP
from mahiru.storage import BlobStore
from mahiru.storage.image_check import ImageCheck

LIMITS = StepLimits(cpus=1.0, memory_bytes=64 * MIB, timeout_seconds=10.0, max_output_bytes=100)


def _copy(run: StepRun) -> int:
    run.write("out", "copy", run.read("in"))
    return 0


def _runtime(tmp_path: Path, **programs: object) -> tuple[FakeRuntime, dict[str, str]]:
    """A runtime with one compute image per program, loaded; their image ids by name."""
    registry = Programs()
    runtime = FakeRuntime(registry)
    images = {}
    for name, program in programs.items():
        archive = tmp_path / f"{name}.tar"
        archive.write_bytes(registry.compute(name, program))  # type: ignore[arg-type]
        images[name] = runtime.load_image(archive)
    return runtime, images


def _input(tmp_path: Path, data: bytes) -> Path:
    folder = tmp_path / "inputs" / "in"
    folder.mkdir(parents=True)
    (folder / "payload").write_bytes(data)
    return folder


def test_it_is_a_container_runtime(tmp_path: Path) -> None:
    """Type-checked against the protocol (mypy), and usable where one is expected."""
    runtime: ContainerRuntime = FakeRuntime(Programs())
    assert runtime.has_image(DATA_BASE_IMAGE)


def test_an_archive_the_ingress_check_refuses_is_not_loaded(tmp_path: Path) -> None:
    """No manifest: refused as the site's ingress check refuses it, and nothing is kept."""
    runtime = FakeRuntime(Programs())
    bad = tmp_path / "bad.tar"
    bad.write_bytes(tar_bytes(lambda archive: add_file(archive, "data/x", b"x")))
    with pytest.raises(InvalidInput):
        runtime.load_image(bad)


def test_saved_images_pass_the_ingress_check_and_load_back_the_same(tmp_path: Path) -> None:
    """A data image built from a folder is saved as a sound archive; loading and extracting
    it gives the same files."""
    runtime = FakeRuntime(Programs())
    files = tmp_path / "files"
    (files / "sub").mkdir(parents=True)
    (files / "sub" / "a.json").write_bytes(b"[1]")
    image = runtime.build_data_image(DATA_BASE_IMAGE, files)
    archive = tmp_path / "saved.tar"
    runtime.save_image(image, archive)
    BlobStore(tmp_path / "blobs", check=ImageCheck).write_bytes(archive.read_bytes())
    again = runtime.load_image(archive)
    runtime.extract_data(again, tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "a.json").read_bytes() == b"[1]"
    runtime.remove_image(image)
    assert not runtime.has_image(image)
    with pytest.raises(NotFound):
        runtime.image_id(image)


def test_a_step_reads_its_inputs_and_writes_its_outputs(tmp_path: Path) -> None:
    """The output folder holds what the program wrote; the step succeeded with exit code 0."""
    runtime, images = _runtime(tmp_path, copy=_copy)
    outcome = runtime.run_step(
        images["copy"],
        {"in": _input(tmp_path, b"hello")},
        ["out"],
        LIMITS,
        output_dir=tmp_path / "outputs",
    )
    assert outcome.succeeded and outcome.exit_code == 0
    assert (outcome.outputs["out"] / "copy").read_bytes() == b"hello"


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        (lambda run: 3, "exited with code 3"),
        (lambda run: run.sleep(11) or 0, "longer than its 10 s limit"),
        (lambda run: run.write("out", "big", b"x" * 101) or 0, "exceeds its limit of 100 bytes"),
    ],
    ids=["exit code", "time limit", "output limit"],
)
def test_a_failing_step_is_an_outcome_and_leaves_no_outputs(
    tmp_path: Path, program: object, reason: str
) -> None:
    """Failures are results with a reason, never exceptions, and their outputs are removed."""
    runtime, images = _runtime(tmp_path, probe=program)
    outcome = runtime.run_step(
        images["probe"], {}, ["out"], LIMITS, output_dir=tmp_path / "outputs"
    )
    assert not outcome.succeeded and reason in outcome.reason
    assert outcome.outputs == {} and not (tmp_path / "outputs" / "out").exists()


def test_a_running_step_is_listed_by_its_labels_and_stopping_it_cancels_it(tmp_path: Path) -> None:
    """The container carries its labels (and the step role) while it runs; stopped, the step
    ends as cancelled; a container that is gone can be stopped again."""
    never = threading.Event()
    runtime, images = _runtime(tmp_path, block=lambda run: run.block(never) or 0)
    outcomes = []
    labels = {LABEL_JOB: "j1"}
    thread = threading.Thread(
        target=lambda: outcomes.append(
            runtime.run_step(
                images["block"], {}, [], LIMITS, output_dir=tmp_path / "o", labels=labels
            )
        )
    )
    thread.start()
    for _ in range(1000):
        if runtime.list_step_containers(labels):
            break
        never.wait(0.005)
    (container,) = runtime.list_step_containers(labels)
    assert container.labels[LABEL_ROLE] == ROLE_STEP
    assert runtime.list_step_containers({LABEL_JOB: "j2"}) == []
    runtime.stop_container(container.id)
    thread.join(10)
    assert not thread.is_alive()
    (outcome,) = outcomes
    assert not outcome.succeeded and "cancelled" in outcome.reason
    runtime.stop_container(container.id)
    assert runtime.list_step_containers() == []


def test_an_output_space_exists_while_used_and_is_gone_after(tmp_path: Path) -> None:
    """The folder is new, bounded as asked, and removed on leaving; a crash's left-overs are
    counted once by `release_output_spaces`."""
    runtime = FakeRuntime(Programs())
    space = tmp_path / "work" / "outputs"
    with runtime.output_space(space, 100) as bounded:
        assert space.is_dir() and bounded is False
        assert runtime.output_spaces() == {space: 100}
    assert not space.exists() and runtime.output_spaces() == {}
    left = runtime.output_space(tmp_path / "work" / "crashed", 5)
    left.__enter__()
    assert runtime.release_output_spaces(tmp_path / "work") == 1
    assert runtime.release_output_spaces(tmp_path / "work") == 0


def test_an_engine_that_is_down_is_unavailable_not_an_error(tmp_path: Path) -> None:
    """Every call raises Unavailable (to retry later) while the engine is down."""
    runtime = FakeRuntime(Programs())
    archive = tmp_path / "a.tar"
    archive.write_bytes(archive_of({"payload": b"1"}))
    runtime.down = True
    with pytest.raises(Unavailable):
        runtime.load_image(archive)
    with pytest.raises(Unavailable):
        runtime.list_step_containers()
    runtime.down = False
    assert runtime.has_image(runtime.load_image(archive))
