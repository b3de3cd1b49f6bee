"""Reading the files under `/data` out of an image archive (`docker save` format).

Used by whoever holds an image file: a site reading a stored result for a live
grant or for its reviewer, a user's client unpacking a downloaded output. Needs no
container engine.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple

from mahiru.errors import InvalidInput, NotFound

#: The bytes `read_data_file` hands out at a time.
READ_CHUNK = 64 * 1024


def extract_data_files(archive: Path, dest_dir: Path) -> list[Path]:
    """Write the files under `/data` of the image in `archive` into `dest_dir`.

    Layers are applied in the manifest's order; whiteouts (`.wh.<name>`,
    `.wh..wh..opq`) remove what lower layers put there. Only regular files
    and directories are written; absolute names and `..` are refused.
    """
    try:
        with tarfile.open(archive) as outer:
            return _write_tree(outer, _tree(outer, archive), dest_dir)
    except tarfile.TarError as error:
        raise InvalidInput(f"{archive}: not a usable image archive: {error}") from None


def list_data_files(archive: Path) -> list[tuple[str, int]]:
    """The regular files under `/data` of the image in `archive` (as `extract_data_files`
    would write them): each one's path under `/data` and size, sorted by path."""
    try:
        with tarfile.open(archive) as outer:
            return [(found.path, found.size) for found in _files(outer, archive)]
    except tarfile.TarError as error:
        raise InvalidInput(f"{archive}: not a usable image archive: {error}") from None


def read_data_file(archive: Path, path: str) -> Iterator[bytes]:
    """The bytes of the file `/data/<path>` of the image in `archive`, in chunks.

    NotFound if there is no such regular file (as `list_data_files` lists them).
    """
    try:
        with tarfile.open(archive) as outer:
            wanted = path.strip("/")
            found = next((f for f in _files(outer, archive) if f.path == wanted), None)
            if found is None:
                raise NotFound(f"the result has no file /data/{wanted}", {"path": path})
            file = outer.extractfile(found.layer)
            assert file is not None  # checked while reading the layers
            with tarfile.open(fileobj=file) as inner:
                content = inner.extractfile(found.member)
                if content is None:
                    return
                while chunk := content.read(READ_CHUNK):
                    yield chunk
    except tarfile.TarError as error:
        raise InvalidInput(f"{archive}: not a usable image archive: {error}") from None


def pack_data_files(archive: Path, out: BinaryIO, folder: str) -> int:
    """Write the regular files under `/data` of the image in `archive` (as
    `extract_data_files` would write them) to `out` as a gzipped tar, under `folder/`;
    the number of files. Each keeps its size and modification time; the owner is dropped."""
    try:
        with tarfile.open(archive) as outer:
            by_layer: dict[str, list[_DataFile]] = {}
            for found in _files(outer, archive):
                by_layer.setdefault(found.layer, []).append(found)
            with tarfile.open(fileobj=out, mode="w:gz") as packed:
                for layer, files in by_layer.items():
                    file = outer.extractfile(layer)
                    assert file is not None  # checked while reading the layers
                    with tarfile.open(fileobj=file) as inner:
                        for found in files:
                            _pack(packed, inner, found, folder)
            return sum(len(files) for files in by_layer.values())
    except tarfile.TarError as error:
        raise InvalidInput(f"{archive}: not a usable image archive: {error}") from None


def _pack(packed: tarfile.TarFile, inner: tarfile.TarFile, found: _DataFile, folder: str) -> None:
    member = inner.getmember(found.member)
    info = tarfile.TarInfo(f"{folder}/{found.path}")
    info.size, info.mtime, info.mode = found.size, member.mtime, 0o644
    packed.addfile(info, inner.extractfile(member))


class _DataFile(NamedTuple):
    """A regular file under /data: its path there, the layer and member holding it, its size."""

    path: str
    layer: str
    member: str
    size: int


def _tree(outer: tarfile.TarFile, archive: Path) -> dict[str, tuple[str, str]]:
    """Path under /data -> (layer and member name, kind), the layers applied in order."""
    tree: dict[str, tuple[str, str]] = {}
    for layer in image_layers(outer):
        file = outer.extractfile(layer)
        if file is None:
            raise InvalidInput(f"{archive}: layer {layer} is not a file")
        with tarfile.open(fileobj=file) as inner:
            _apply_layer(inner, layer, tree)
    return tree


def _files(outer: tarfile.TarFile, archive: Path) -> list[_DataFile]:
    """The regular files of the tree, sorted by path."""
    found: list[_DataFile] = []
    by_layer: dict[str, list[tuple[str, str]]] = {}
    for relative, (source, kind) in sorted(_tree(outer, archive).items()):
        if kind == "file":
            layer, _, member = source.partition("\0")
            by_layer.setdefault(layer, []).append((member, relative))
    for layer, members in by_layer.items():
        file = outer.extractfile(layer)
        assert file is not None  # checked while reading the layers
        with tarfile.open(fileobj=file) as inner:
            for member, relative in members:
                info = inner.getmember(member)
                if info.islnk():  # a hard link's size is its target's
                    try:
                        info = inner.getmember(info.linkname)
                    except KeyError:
                        raise InvalidInput(f"{archive}: {member} links to nothing") from None
                found.append(_DataFile(relative, layer, member, info.size))
    return sorted(found)


def image_layers(outer: tarfile.TarFile) -> list[str]:
    """The layers of the one image in a `docker save` archive, bottom first, from its
    manifest; InvalidInput if it holds no manifest, or not exactly one image."""
    try:
        file = outer.extractfile("manifest.json")
    except KeyError:
        raise InvalidInput("the image archive has no manifest.json") from None
    if file is None:
        raise InvalidInput("the image archive's manifest.json is not a file")
    manifest = json.loads(file.read())
    if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise InvalidInput("the image archive must hold exactly one image")
    layers = manifest[0].get("Layers")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise InvalidInput("the image manifest lists no layers")
    return list(layers)


def _data_path(name: str) -> str | None:
    """`name` relative to `data/`, '' for `data` itself, None outside; InvalidInput if unsafe."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInput(f"unsafe archive member {name!r}")
    parts = [p for p in path.parts if p != "."]
    if not parts or parts[0] != "data":
        return None
    return "/".join(parts[1:])


def _apply_layer(inner: tarfile.TarFile, layer: str, tree: dict[str, tuple[str, str]]) -> None:
    for member in inner.getmembers():
        relative = _data_path(member.name)
        if relative is None:
            continue
        parent, _, base = relative.rpartition("/")
        if base == ".wh..wh..opq":
            prefix = f"{parent}/" if parent else ""
            for key in [k for k in tree if k.startswith(prefix) and k != parent]:
                del tree[key]
            continue
        if base.startswith(".wh."):
            gone = f"{parent}/{base[4:]}" if parent else base[4:]
            for key in [k for k in tree if k == gone or k.startswith(f"{gone}/")]:
                del tree[key]
            continue
        if not relative:
            continue
        if member.isdir():
            tree[relative] = (f"{layer}\0{member.name}", "dir")
        elif member.isfile() or (member.islnk() and _data_path(member.linkname)):
            # tarfile reads a hard link's content from its target in the same layer.
            tree[relative] = (f"{layer}\0{member.name}", "file")
        else:
            tree.pop(relative, None)  # links and devices are not data


def _write_tree(outer: tarfile.TarFile, tree: dict[str, tuple[str, str]], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    by_layer: dict[str, list[tuple[str, str]]] = {}
    for relative, (source, kind) in sorted(tree.items()):
        target = dest.joinpath(*relative.split("/"))
        if kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        layer, _, member = source.partition("\0")
        by_layer.setdefault(layer, []).append((member, relative))
    for layer, members in by_layer.items():
        file = outer.extractfile(layer)
        assert file is not None  # checked while reading the layers
        with tarfile.open(fileobj=file) as inner:
            for member, relative in members:
                target = dest.joinpath(*relative.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                content = inner.extractfile(member)
                if content is None:
                    continue
                with target.open("wb") as out:
                    shutil.copyfileobj(content, out)
                written.append(target)
    return sorted(written)
