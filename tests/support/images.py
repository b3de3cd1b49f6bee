"""Image archives for tests: small, sound `docker save` archives and broken variants."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

#: Adds members to a tar archive being written.
Members = Callable[[tarfile.TarFile], None]


def add_file(archive: tarfile.TarFile, name: str, data: bytes, **fields: object) -> None:
    """Add a regular file member."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    archive.addfile(info, io.BytesIO(data))


def add_link(archive: tarfile.TarFile, name: str, target: str, *, hard: bool = False) -> None:
    """Add a symbolic (or hard) link member."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    archive.addfile(info)


def tar_bytes(members: Members, *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar archive (in memory) with the members `members` adds."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        members(archive)
    return buffer.getvalue()


def data_layer(payload: bytes) -> bytes:
    """A layer with `/data/payload` holding `payload`."""

    def members(archive: tarfile.TarFile) -> None:
        folder = tarfile.TarInfo("data")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        add_file(archive, "data/payload", payload)

    return tar_bytes(members)


def image_bytes(layer: bytes, *, compress: bool = False, extra: Members | None = None) -> bytes:
    """A `docker save` archive with one layer (gzip-compressed if asked)."""
    if compress:
        layer = gzip.compress(layer, compresslevel=1)
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = [{"Config": config_name, "RepoTags": None, "Layers": [f"{layer_digest}/layer.tar"]}]

    def members(archive: tarfile.TarFile) -> None:
        add_file(archive, f"{layer_digest}/layer.tar", layer)
        add_file(archive, config_name, config)
        if extra is not None:
            extra(archive)
        add_file(archive, "manifest.json", json.dumps(manifest).encode())

    return tar_bytes(members)


def write_image(path: Path, size: int = 1000, *, seed: bytes | None = None) -> Path:
    """Write a sound image archive carrying about `size` random bytes of data to `path`."""
    payload = os.urandom(size) if seed is None else (seed * (size // len(seed) + 1))[:size]
    path.write_bytes(image_bytes(data_layer(payload)))
    return path


def write_large_image(path: Path, size: int, *, chunk: int = 1024 * 1024) -> str:
    """Write a sound image archive with `size` random bytes of data, streaming; its sha256.

    The data file and the layer are written to folders beside `path` first
    and removed afterwards, so memory use stays at one chunk.
    """
    work = path.with_name(f".{path.name}.parts")
    work.mkdir()
    try:
        payload = work / "payload"
        with payload.open("wb") as file:
            for start in range(0, size, chunk):
                file.write(os.urandom(min(chunk, size - start)))
        layer = work / "layer.tar"
        with tarfile.open(layer, "w") as archive:
            archive.add(payload, arcname="data/payload")
        config = json.dumps({"rootfs": {"type": "layers", "diff_ids": []}}).encode()
        manifest = [{"Config": "config.json", "RepoTags": None, "Layers": ["layer/layer.tar"]}]
        with tarfile.open(path, "w") as archive:
            archive.add(layer, arcname="layer/layer.tar")
            add_file(archive, "config.json", config)
            add_file(archive, "manifest.json", json.dumps(manifest).encode())
    finally:
        for part in work.iterdir():
            part.unlink()
        work.rmdir()
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()
