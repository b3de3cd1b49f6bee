"""Output image archives written without the engine (`write_output_image`): the engine loads
them as it loads its own saves, with the same /data a commit on the base would hold."""

from __future__ import annotations

import tarfile
from pathlib import Path

import docker
import pytest

from mahiru.data_archives import extract_data_files
from mahiru.errors import InvalidInput
from mahiru.runtime import DockerRuntime
from mahiru.runtime.assets import DATA_BASE_IMAGE
from mahiru.runtime.output_images import write_output_image
from mahiru.storage import BlobStore
from mahiru.storage.image_check import ImageCheck

pytestmark = pytest.mark.e2e


def _files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_an_output_archive_loads_with_the_base_files_and_the_outputs_over_them(
    container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """On a base with /data files: clashing names replaced, others kept, new ones added; the
    base's settings and labels kept and the output's added; the ingress gate accepts it."""
    base_files = _files(tmp_path / "base", {"a.txt": "old", "keep.txt": "kept"})
    base = container_runtime.build_data_image(DATA_BASE_IMAGE, base_files, labels={"b": "1"})
    container_runtime.save_image(base, tmp_path / "base.tar")
    outputs = _files(tmp_path / "out", {"a.txt": "new", "sub/c.txt": "sea"})
    blobs = BlobStore(tmp_path / "blobs", check=ImageCheck)
    with blobs.writer() as writer:
        write_output_image(tmp_path / "base.tar", outputs, writer, labels={"mahiru.step": "s"})
        stored = writer.commit()
    archive = blobs.path(stored.digest)
    image = container_runtime.load_image(archive)
    try:
        container_runtime.extract_data(image, tmp_path / "engine")
        expected = {"a.txt": "new", "keep.txt": "kept", "sub/c.txt": "sea"}
        assert _tree(tmp_path / "engine") == expected
        extract_data_files(archive, tmp_path / "no-engine")
        assert _tree(tmp_path / "no-engine") == expected
        inspected = docker.from_env().api.inspect_image(image)
        base_config = docker.from_env().api.inspect_image(base)["Config"]
        assert inspected["Config"]["Labels"] == {**base_config["Labels"], "mahiru.step": "s"}
        assert inspected["Config"]["Cmd"] == base_config["Cmd"]
        assert (
            len(inspected["RootFS"]["Layers"])
            == len(docker.from_env().api.inspect_image(base)["RootFS"]["Layers"]) + 1
        )
    finally:
        container_runtime.remove_image(image)
        container_runtime.remove_image(base)


def test_an_output_archive_on_a_base_that_is_no_image_archive_is_invalid_input(
    tmp_path: Path,
) -> None:
    """A base without a manifest: InvalidInput naming what is missing, nothing written."""
    with tarfile.open(tmp_path / "base.tar", "w") as archive:
        archive.add(_files(tmp_path / "x", {"f": "x"}) / "f", arcname="f")
    outputs = _files(tmp_path / "out", {"a.txt": "new"})
    with (tmp_path / "image.tar").open("wb") as out, pytest.raises(InvalidInput, match="manifest"):
        write_output_image(tmp_path / "base.tar", outputs, out)
    assert (tmp_path / "image.tar").stat().st_size == 0
