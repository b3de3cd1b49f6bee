"""Reading the files under `/data` out of an image archive (`docker save` format).

Used by whoever holds an image file: a site reading a stored result for a live
grant, a user's client unpacking a downloaded output. Needs no container engine.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from mahiru.errors import InvalidInput


def extract_data_files(archive: Path, dest_dir: Path) -> list[Path]:
    """Write the files under `/data` of the image in `archive` into `dest_dir`.

    Layers are applied in the manifest's order; whiteouts (`.wh.<name>`,
    `.wh..wh..opq`) remove what lower layers put there. Only regular files
    and directories are written; absolute names and `..` are refused.
    """
    tree: dict[str, tuple[str, str]] = {}  # path under /data -> (layer member, kind)
    try:
        with tarfile.open(archive) as outer:
            for layer in _layers(outer):
                file = outer.extractfile(layer)
                if file is None:
                    raise InvalidInput(f"{archive}: layer {layer} is not a file")
                with tarfile.open(fileobj=file) as inner:
                    _apply_layer(inner, layer, tree)
            return _write_tree(outer, tree, dest_dir)
    except tarfile.TarError as error:
        raise InvalidInput(f"{archive}: not a usable image archive: {error}") from None


def _layers(outer: tarfile.TarFile) -> list[str]:
    manifest_file = outer.extractfile("manifest.json")
    if manifest_file is None:
        raise InvalidInput("the image archive has no manifest.json")
    manifest = json.loads(manifest_file.read())
    if not isinstance(manifest, list) or len(manifest) != 1:
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
