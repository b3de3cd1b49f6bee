"""Image archives read and written without the engine: output archives (`write_output_image`)
load as the engine's own saves do, with the /data a commit on the base would hold, and an
archive's /data (`extract_archive_data`) is what the engine copies out of the loaded image."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import docker
import pytest

from mahiru.data_archives import extract_data_files
from mahiru.errors import InvalidInput, NotFound
from mahiru.runtime import DockerRuntime, archives
from mahiru.runtime.archive_data import extract_archive_data
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


def _listing(root: Path) -> dict[str, tuple[str, int, str]]:
    """Each path below `root`: its kind, its mode bits, and its content or link target."""
    found = {}
    for path in sorted(root.rglob("*")):
        mode = os.lstat(path).st_mode & 0o777
        if path.is_symlink():
            found[str(path.relative_to(root))] = ("link", 0, os.readlink(path))
        elif path.is_dir():
            found[str(path.relative_to(root))] = ("dir", mode, "")
        else:
            found[str(path.relative_to(root))] = ("file", mode, path.read_text())
    return found


def _layer(*members: tuple[str, bytes, str]) -> bytes:
    """A layer tar: (name, content, kind) with kind "file", "dir" or "link:<target>"."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        for name, content, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind.startswith("link:"):
                info.type, info.linkname = tarfile.SYMTYPE, kind[5:]
            else:
                info.size, info.mode = len(content), 0o755 if kind == "exec" else 0o644
            layer.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buffer.getvalue()


def _archive(path: Path, *layers: bytes) -> Path:
    """A docker save archive of an image made of `layers`."""
    names = [f"{hashlib.sha256(layer).hexdigest()}/layer.tar" for layer in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/nothing"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{n.split('/')[0]}" for n in names]},
        }
    ).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": None, "Layers": names}]).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in [*zip(names, layers, strict=True), ("config.json", config),
                           ("manifest.json", manifest)]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


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


def test_the_data_of_an_archive_is_what_the_engine_copies_out_of_its_image(
    container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """Layers applied in order: later files replace earlier ones, whiteouts remove files and
    empty folders, links inside /data and executable bits are kept, other paths ignored."""
    archive = _archive(
        tmp_path / "image.tar",
        _layer(
            ("etc/other", b"not data", "file"),
            ("data", b"", "dir"),
            ("data/a", b"a1", "file"),
            ("data/b", b"b1", "file"),
            ("data/d", b"", "dir"),
            ("data/d/x", b"x1", "file"),
            ("data/run", b"#!/bin/sh", "exec"),
        ),
        _layer(
            ("data/.wh.a", b"", "file"),
            ("data/b", b"b2", "file"),
            ("data/d/.wh..wh..opq", b"", "file"),
            ("data/d/y", b"y2", "file"),
            ("data/to-b", b"", "link:b"),
        ),
    )
    extract_archive_data(archive, tmp_path / "direct")
    assert _tree(tmp_path / "direct") == {"b": "b2", "d/y": "y2", "run": "#!/bin/sh", "to-b": "b2"}
    image = container_runtime.load_image(archive)
    try:
        container_runtime.extract_data(image, tmp_path / "engine")
    finally:
        container_runtime.remove_image(image)
    assert _listing(tmp_path / "direct") == _listing(tmp_path / "engine")


@pytest.mark.parametrize("data_filter", [True, False], ids=["filter", "by-hand"])
def test_an_archive_whose_data_links_out_of_it_is_refused_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_filter: bool
) -> None:
    """A link from /data to /etc/passwd: InvalidInput, and no folder is left."""
    monkeypatch.setattr(archives, "HAS_DATA_FILTER", data_filter)
    archive = _archive(
        tmp_path / "image.tar",
        _layer(("data", b"", "dir"), ("data/l", b"", "link:/etc/passwd")),
    )
    with pytest.raises(InvalidInput):
        extract_archive_data(archive, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [archive]


def test_an_archive_without_data_is_not_found(tmp_path: Path) -> None:
    """An image with no /data in any layer: NotFound, as from the engine."""
    archive = _archive(tmp_path / "image.tar", _layer(("etc/x", b"x", "file")))
    with pytest.raises(NotFound):
        extract_archive_data(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
