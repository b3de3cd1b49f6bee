"""The `/data` of an image straight from its `docker save` archive, without the engine.

A step's data inputs are stored as image archives. Loading one into the
engine and copying `/data` out of a scratch container costs two engine round
trips and a copy of every layer; only `/data` is wanted. Here the layers
are applied in the manifest's order, as the engine applies them: each
layer's members under `data/` are extracted over the earlier ones with the
rules of `extract_tree` (the engine path's rules: unsafe names and links
that leave the folder are refused, modes are cut to 0755, no owners), and
whiteouts (`.wh.<name>`, `.wh..wh..opq`) remove what lower layers put there.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from mahiru.data_archives import image_layers
from mahiru.errors import Conflict, InvalidInput, NotFound
from mahiru.runtime.archives import extract_members

_PREFIX = "data"


def extract_archive_data(archive: Path, dest: Path) -> None:
    """Copy `/data` of the image in `archive` to `dest`, which appears complete or not at all.

    `dest` must not exist, or be an empty folder. NotFound if no layer has
    `/data`; InvalidInput if the archive is not a one-image archive or holds
    an unsafe member under `data/`.
    """
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(f"{dest} already exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
    try:
        found = False
        with tarfile.open(archive) as outer:
            for name in image_layers(outer):
                layer = outer.extractfile(name)
                if layer is None:
                    raise InvalidInput(f"{archive}: layer {name} is not a file")
                with tarfile.open(fileobj=layer) as inner:
                    seen: list[bool] = []
                    extract_members(inner, _applied(inner, partial, seen), partial, prefix=_PREFIX)
                    found = found or any(seen)
        if not found:
            raise NotFound(f"image archive {archive.name} has no /data")
        partial.chmod(0o755)  # mkdtemp made it 0700; steps run as another user
        os.replace(partial, dest)
    except tarfile.TarError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise InvalidInput(f"unusable image archive {archive.name}: {error}") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _applied(inner: tarfile.TarFile, root: Path, seen: list[bool]) -> Iterator[tarfile.TarInfo]:
    """The members of a layer under `data/` to extract over `root`, in order; whiteouts are
    applied (and what a member replaces is removed) as they come. `seen` gets True if the
    layer has anything under `data/`."""
    for member in inner:
        parts = [p for p in PurePosixPath(member.name).parts if p != "."]
        if not parts or parts[0] != _PREFIX:
            continue
        seen[:] = [True]
        if ".." in parts or PurePosixPath(member.name).is_absolute():
            raise InvalidInput(f"unsafe archive member {member.name!r}: absolute, or contains '..'")
        relative = parts[1:]
        if relative and relative[-1] == ".wh..wh..opq":
            _empty(root.joinpath(*relative[:-1]))
            continue
        if relative and relative[-1].startswith(".wh."):
            _remove(root.joinpath(*relative[:-1], relative[-1][4:]))
            continue
        if relative:
            target = root.joinpath(*relative)
            if not (member.isdir() and target.is_dir() and not target.is_symlink()):
                _remove(target)
        yield member


def _remove(path: Path) -> None:
    """Remove what is at `path` (a folder with its contents; a link, not what it names)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def _empty(folder: Path) -> None:
    if folder.is_dir() and not folder.is_symlink():
        for entry in list(folder.iterdir()):
            _remove(entry)
