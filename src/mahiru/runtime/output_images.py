"""A step output's image archive, written from its files on a base image's archive.

Packaging an output through the engine (a scratch container of the base,
the files copied in, a commit, a `docker save` of the whole image and the
image removed again) costs several engine round trips and a copy of every
base layer. The archive it produces is only ever stored and loaded again,
so it is written here directly instead: the base archive's layers as they
are, one new layer holding the files under `/data` (as `write_tree_tar`
lays them out, so the same files as a commit would hold), and a config that
is the base's with that layer and the output's labels added. Any engine loads
it (`docker load`), and `mahiru.data_archives` reads its `/data` without one.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol, cast

from mahiru.errors import InvalidInput
from mahiru.runtime.archives import CHUNK_SIZE, write_tree_tar

MANIFEST = "manifest.json"


class Writable(Protocol):
    """Where an archive goes: a binary file, or a blob store's writer."""

    def write(self, chunk: bytes, /) -> object: ...


def write_output_image(
    base: Path,
    files: Path,
    out: Writable,
    *,
    labels: Mapping[str, str] | None = None,
    scratch_dir: Path | None = None,
) -> None:
    """Write to `out` a `docker save` archive of the image in archive `base` with the files
    of folder `files` under `/data` as a new top layer, and `labels` added to its own.

    The layer is staged in a temporary file in `scratch_dir` (to learn its
    digest before it is written); InvalidInput if `base` is not a one-image
    archive or `files` holds something other than files and folders.
    """
    try:
        with tarfile.open(base) as source:
            layers, config = _base_image(source)
            with tempfile.TemporaryFile(dir=scratch_dir) as layer:
                write_tree_tar({"/data": files}, layer)
                size = layer.tell()
                layer.seek(0)
                diff_id = _sha256(layer)
                layer.seek(0)
                new_layer = f"{diff_id}/layer.tar"
                config_bytes = _config_bytes(config, diff_id, labels or {})
                config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
                manifest = json.dumps(
                    [{"Config": config_name, "RepoTags": None, "Layers": [*layers, new_layer]}]
                ).encode()
                with tarfile.open(
                    fileobj=cast(IO[bytes], out), mode="w|", format=tarfile.PAX_FORMAT
                ) as archive:
                    written = set()
                    for name in layers:
                        if name not in written:
                            _copy_member(source, name, archive)
                            written.add(name)
                    if new_layer not in written:
                        _add(archive, new_layer, size, layer)
                    _add_bytes(archive, config_name, config_bytes)
                    _add_bytes(archive, MANIFEST, manifest)
    except tarfile.TarError as error:
        raise InvalidInput(f"{base}: not a usable image archive: {error}") from None


def _base_image(source: tarfile.TarFile) -> tuple[list[str], dict[str, Any]]:
    """The layer paths and the config of the one image in `source`."""
    manifest = json.loads(_read(source, MANIFEST))
    if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise InvalidInput("the base image archive must hold exactly one image")
    layers = manifest[0].get("Layers")
    config_name = manifest[0].get("Config")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise InvalidInput("the base image manifest lists no layers")
    if not isinstance(config_name, str):
        raise InvalidInput("the base image manifest names no config")
    config = json.loads(_read(source, config_name))
    if not isinstance(config, dict):
        raise InvalidInput("the base image config is not a JSON object")
    return list(layers), config


def _config_bytes(base: dict[str, Any], diff_id: str, labels: Mapping[str, str]) -> bytes:
    """The base's config with one more layer (and its history entry) and `labels` added."""
    config = dict(base)
    settings = dict(config.get("config") or {})
    settings["Labels"] = {**(settings.get("Labels") or {}), **labels}
    config["config"] = settings
    rootfs = dict(config.get("rootfs") or {"type": "layers"})
    rootfs["diff_ids"] = [*(rootfs.get("diff_ids") or []), f"sha256:{diff_id}"]
    config["rootfs"] = rootfs
    if isinstance(config.get("history"), list):
        entry = {"created_by": "mahiru: step output files under /data"}
        if "created" in config:
            entry["created"] = config["created"]
        config["history"] = [*config["history"], entry]
    # What the engine's own container config said describes a build, not this image.
    config.pop("container", None)
    config.pop("container_config", None)
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _read(source: tarfile.TarFile, name: str) -> bytes:
    try:
        file = source.extractfile(name)
    except KeyError:
        raise InvalidInput(f"the base image archive has no {name}") from None
    if file is None:
        raise InvalidInput(f"{name} in the base image archive is not a file")
    return file.read()


def _copy_member(source: tarfile.TarFile, name: str, archive: tarfile.TarFile) -> None:
    """Copy the file `name` of `source` (a link is followed) into `archive` under that name."""
    try:
        file = source.extractfile(name)
    except KeyError:
        raise InvalidInput(f"the base image archive lacks its layer {name}") from None
    if file is None:
        raise InvalidInput(f"layer {name} in the base image archive is not a file")
    size = file.seek(0, 2)
    file.seek(0)
    _add(archive, name, size, file)


def _add(archive: tarfile.TarFile, name: str, size: int, content: IO[bytes]) -> None:
    entry = tarfile.TarInfo(name)
    entry.size = size
    entry.mode = 0o644
    archive.addfile(entry, content)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    _add(archive, name, len(data), io.BytesIO(data))


def _sha256(file: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := file.read(CHUNK_SIZE):
        digest.update(chunk)
    return digest.hexdigest()
