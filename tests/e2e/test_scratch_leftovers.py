"""A starting site removes the output images a killed process of this host left, and only those."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from tests.e2e.conftest import SESSION_LABEL
from tests.support.sites import made_by_this_process

from mahiru.runtime import LABEL_ROLE, ROLE_STEP, DockerRuntime, ImageConfig
from mahiru.runtime.assets import DATA_BASE_IMAGE
from mahiru.runtime.docker_images import LABEL_SCRATCH_OWNER

# serial: what these tests leave on purpose (images of gone processes) is what every other e2e
# test's clean-up removes, so another worker's could take it between two steps of a test here.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

#: Builds a data image through the runtime, prints its id and exits without removing it,
#: as a site killed between packaging an output and removing its image does.
BUILD_AND_EXIT = """
import sys
from pathlib import Path
from mahiru.runtime import LABEL_ROLE, ROLE_STEP, DockerRuntime
files, job, prefix, tag = sys.argv[1:5]
runtime = DockerRuntime(scratch_prefix=prefix)
labels = {"mahiru.job": job, "mahiru.step": "s", "mahiru.output": "o"}
print(runtime.build_data_image(sys.argv[5], Path(files), labels=labels, tag=tag or None))
"""


def build_in_gone_process(files: Path, job: str, prefix: str, tag: str = "") -> str:
    """The id of a data image built by a Python process that has exited since."""
    built = subprocess.run(
        [sys.executable, "-c", BUILD_AND_EXIT, str(files), job, prefix, tag, DATA_BASE_IMAGE],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def made_images(container_runtime: DockerRuntime) -> Iterator[list[str]]:
    """Images the test records here are removed after it, whatever happened."""
    images: list[str] = []
    yield images
    for image in images:
        container_runtime.remove_image(image)


def test_clean_up_removes_only_untagged_output_images_of_gone_processes(
    container_runtime: DockerRuntime, made_images: list[str], tmp_path: Path
) -> None:
    """An untagged job image of an exited process goes; a tagged one and a live process's stay."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "result.txt").write_text(f"{uuid.uuid4().hex}\n")  # a fresh image, not a shared one
    job = f"job-{uuid.uuid4().hex[:8]}"
    prefix = f"mahiru-test-leftovers-{uuid.uuid4().hex[:8]}"
    tag = f"mahiru-test-leftover-{uuid.uuid4().hex[:8]}:latest"

    orphan = build_in_gone_process(files, job, prefix)
    made_images.append(orphan)
    (files / "result.txt").write_text(f"{uuid.uuid4().hex}\n")
    tagged = build_in_gone_process(files, job, prefix, tag)
    made_images.append(tag)
    (files / "result.txt").write_text(f"{uuid.uuid4().hex}\n")
    labels = {"mahiru.job": job, "mahiru.step": "s", "mahiru.output": "o"}
    own = container_runtime.build_data_image(DATA_BASE_IMAGE, files, labels=labels)
    made_images.append(own)
    assert len({orphan, tagged, own}) == 3

    removed = container_runtime.remove_scratch_leftovers()

    assert removed.images >= 1  # other killed processes' images may go too
    assert not container_runtime.has_image(orphan), "the gone process's output image is left"
    assert container_runtime.image_id(tag) == tagged, "a tagged image was removed"
    assert container_runtime.has_image(own), "a live process's output image was removed"


def test_clean_up_keeps_an_output_image_in_use_and_says_so(
    container_runtime: DockerRuntime,
    made_images: list[str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A gone process's output image that a container still uses is kept, with a log line."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "result.txt").write_text(f"{uuid.uuid4().hex}\n")
    prefix = f"mahiru-test-leftovers-{uuid.uuid4().hex[:8]}"
    orphan = build_in_gone_process(files, f"job-{uuid.uuid4().hex[:8]}", prefix)
    made_images.append(orphan)
    client = docker.from_env()
    # A container inherits its image's labels: one of another host's is never cleaned up.
    elsewhere = {LABEL_SCRATCH_OWNER: "another-host:1"}
    user = client.api.create_container(orphan, command=["/bin/sh"], labels=elsewhere)["Id"]
    try:
        with caplog.at_level(logging.INFO, logger="mahiru.runtime"):
            container_runtime.remove_scratch_leftovers()
        assert container_runtime.has_image(orphan), "an image in use was removed"
        kept = [r for r in caplog.records if r.getMessage() == "kept an output image in use"]
        assert [getattr(r, "image", None) for r in kept] == [orphan]
    finally:
        client.api.remove_container(user, force=True)
        client.close()


def test_clean_up_leaves_a_running_container_of_a_gone_process_s_image_alone(
    container_runtime: DockerRuntime, made_images: list[str], tmp_path: Path
) -> None:
    """A step runs from an image a process since gone built, so the container carries that
    process's scratch label too; it was started, so it is no scratch container: it keeps
    running, and its image stays."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "result.txt").write_text(f"{uuid.uuid4().hex}\n")
    prefix = f"mahiru-test-leftovers-{uuid.uuid4().hex[:8]}"
    orphan = build_in_gone_process(files, f"job-{uuid.uuid4().hex[:8]}", prefix)
    made_images.append(orphan)
    client = docker.from_env()
    running = client.api.create_container(orphan, command=["sleep", "60"])["Id"]
    try:
        labels = client.api.inspect_container(running)["Config"]["Labels"] or {}
        assert LABEL_SCRATCH_OWNER in labels, "the container does not inherit the label"
        client.api.start(running)
        container_runtime.remove_scratch_leftovers()
        assert client.api.inspect_container(running)["State"]["Running"]
        assert container_runtime.has_image(orphan)
    finally:
        client.api.remove_container(running, force=True)
        client.close()


def test_clean_up_leaves_a_step_container_that_has_not_started_yet_alone(
    container_runtime: DockerRuntime, made_images: list[str], tmp_path: Path
) -> None:
    """A step container is "created" for a moment before it starts, with the scratch label of
    the gone process that built its image: another site starting up then must not take it
    (that killed steps of sites sharing the engine)."""
    _assert_created_container_of_gone_image_kept(
        container_runtime, made_images, tmp_path, labels={LABEL_ROLE: ROLE_STEP}
    )


#: Opens a scratch container through the runtime, prints its name and dies inside the block,
#: as a site killed while copying files into or out of an image does.
SCRATCH_AND_DIE = """
import os, sys
from mahiru.runtime import DockerRuntime
runtime = DockerRuntime(scratch_prefix=sys.argv[1])
with runtime._scratch_container(sys.argv[2]) as name:
    print(name, flush=True)
    os._exit(0)
"""


def test_clean_up_removes_the_scratch_container_of_a_gone_process(
    container_runtime: DockerRuntime, made_images: list[str], tmp_path: Path
) -> None:
    """A process that died with a scratch container open left it "created"; it goes."""
    prefix = f"mahiru-test-leftovers-{uuid.uuid4().hex[:8]}"
    died = subprocess.run(
        [sys.executable, "-c", SCRATCH_AND_DIE, prefix, DATA_BASE_IMAGE],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    name = died.stdout.strip()
    assert name.startswith(prefix), died.stderr[-2000:]
    client = docker.from_env()
    try:
        assert client.api.inspect_container(name)["State"]["Status"] == "created"
        removed = container_runtime.remove_scratch_leftovers()
        assert removed.containers >= 1
        with pytest.raises(docker.errors.NotFound):
            client.api.inspect_container(name)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(name, force=True)
        client.close()


def test_clean_up_leaves_a_created_container_of_a_gone_process_s_image_alone(
    container_runtime: DockerRuntime, made_images: list[str], tmp_path: Path
) -> None:
    """A container made from an image a gone process built, with no step label (one a
    Slurm step's script or an operator created, not yet started), carries that process's
    scratch label by inheritance only: a site starting up must not take it (that killed
    Slurm steps and benchmark runs of other sites on the engine)."""
    _assert_created_container_of_gone_image_kept(
        container_runtime, made_images, tmp_path, name=f"mahiru-scratch-{uuid.uuid4().hex[:12]}"
    )


def _assert_created_container_of_gone_image_kept(
    runtime: DockerRuntime, made_images: list[str], tmp_path: Path, **create: Any
) -> None:
    """Create (never start) a container, with `create`'s settings, of an image a gone process
    built; it inherits that process's scratch label, and a clean-up must leave it alone."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "result.txt").write_text(f"{uuid.uuid4().hex}\n")
    prefix = f"mahiru-test-leftovers-{uuid.uuid4().hex[:8]}"
    orphan = build_in_gone_process(files, f"job-{uuid.uuid4().hex[:8]}", prefix)
    made_images.append(orphan)
    client = docker.from_env()
    created = client.api.create_container(orphan, command=["sleep", "60"], **create)
    try:
        labels = client.api.inspect_container(created["Id"])["Config"]["Labels"] or {}
        assert LABEL_SCRATCH_OWNER in labels, "the container does not inherit the label"
        runtime.remove_scratch_leftovers()
        assert client.api.inspect_container(created["Id"])["State"]["Status"] == "created"
    finally:
        client.api.remove_container(created["Id"], force=True)
        client.close()


def test_the_leftover_check_takes_no_container_of_another_process(
    container_runtime: DockerRuntime, step_labels: dict[str, str]
) -> None:
    """After each test, the step containers this test process made are looked for (and
    stopped); one made by another worker from an image that carries this session's label
    is not taken for one of them, as it once was: an image passes its labels on."""
    image = container_runtime.build_image(
        DATA_BASE_IMAGE, {}, config=ImageConfig(cmd=("sleep", "60")), labels=step_labels
    )
    api = docker.from_env().api
    made: list[str] = []
    try:
        for labels in ({"mahiru.instance": "another-process"}, step_labels):
            made.append(
                str(api.create_container(image, labels={**labels, LABEL_ROLE: ROLE_STEP})["Id"])
            )
        found = {c.id: c for c in container_runtime.list_step_containers()}
        foreign, own = found[made[0]], found[made[1]]
        assert foreign.labels[SESSION_LABEL] == step_labels[SESSION_LABEL]  # inherited
        session = (SESSION_LABEL, step_labels[SESSION_LABEL])
        assert not made_by_this_process(foreign, session)
        # Given the label when it was made (its value the image's too): this process's.
        assert made_by_this_process(own, session, lambda _: {})
        assert not made_by_this_process(own, session)
    finally:
        for container in made:
            api.remove_container(container, force=True)
        container_runtime.remove_image(image)
