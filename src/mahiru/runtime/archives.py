"""Tar streams to and from the engine: safe extraction, tarring host folders, atomic files.

Everything here streams: memory use does not depend on the size of the data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mahiru.errors import Conflict, InvalidInput

CHUNK_SIZE = 1024 * 1024


class ChunkReader(io.RawIOBase):
    """A read-only binary file over an iterator of byte chunks (an HTTP body, say)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def extract_tree(chunks: Iterable[bytes], dest: Path, *, prefix: str) -> None:
    """Extract the tar stream `chunks`, whose members all lie under `prefix/`, into `dest`.

    `prefix/` itself becomes `dest`. The stream is untrusted: absolute names,
    `..` components, members outside `prefix/`, links that point outside
    `dest` and device files, pipes and sockets are rejected with InvalidInput
    (the rules of `tarfile.data_filter`, plus a stricter name check). The
    result appears all at once: extraction goes into a temporary sibling that
    is renamed to `dest` only when complete. `dest` must not exist, or be an
    empty directory.
    """
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(f"{dest} already exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
    try:
        with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as archive:
            extract_members(archive, archive, partial, prefix=prefix)
        # mkdtemp made it 0700; the data is meant to be read by step containers.
        partial.chmod(0o755)
        os.replace(partial, dest)
    except tarfile.TarError as error:
        _remove_partial(partial)
        raise InvalidInput(f"unusable archive for {dest}: {error}") from None
    except BaseException:
        _remove_partial(partial)
        raise


_TarFilter = Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]

#: Extraction filters arrived in Python 3.11.4; Debian bookworm ships 3.11.2,
#: where `_extract_checked` applies the same rules by hand.
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


def extract_members(
    archive: tarfile.TarFile, members: Iterable[tarfile.TarInfo], dest: Path, *, prefix: str
) -> None:
    """Extract `members` of `archive`, all under `prefix/`, into the folder `dest` with the
    rules of `extract_tree` (InvalidInput for an unsafe one)."""
    if HAS_DATA_FILTER:
        archive.extractall(dest, members=members, filter=_under_prefix_filter(prefix))
    else:
        _extract_checked(archive, members, dest, prefix)


def _extract_checked(
    archive: tarfile.TarFile, members: Iterable[tarfile.TarInfo], dest: Path, prefix: str
) -> None:
    """Extract member by member with the rules of `tarfile.data_filter`, for old Pythons."""
    root = dest.resolve()
    for member in members:
        name = _relative_name(member.name, prefix)
        if name is None:
            continue
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise InvalidInput(f"unsafe archive member {member.name!r}: not a file, folder or link")
        target = (root / name).resolve()
        if not target.is_relative_to(root):
            raise InvalidInput(f"unsafe archive member {member.name!r}: outside the destination")
        if member.issym():
            link = PurePosixPath(member.linkname)
            pointed = (target.parent / member.linkname).resolve()
            if link.is_absolute() or not pointed.is_relative_to(root):
                raise InvalidInput(
                    f"unsafe archive member {member.name!r}: link to {member.linkname!r} leaves"
                    " the destination"
                )
        if member.islnk():
            linked = _relative_name(member.linkname, prefix)
            if linked is None:
                raise InvalidInput(f"archive member {member.name!r} is a hard link to a directory")
            member.linkname = linked
        member.name = name
        # As data_filter: no ownership from the archive, no setuid/setgid/sticky bits,
        # nobody but the owner may write.
        member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
        member.mode &= 0o755
        if member.isdir():
            member.mode |= 0o700
        archive.extract(member, dest, set_attrs=not member.issym())


def _under_prefix_filter(prefix: str) -> _TarFilter:
    def accept(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        name = _relative_name(member.name, prefix)
        if name is None:
            return None  # `prefix/` itself: that is `dest`
        renamed = member.replace(name=name, deep=False)
        if member.islnk():
            # Hard link targets are archive paths, so they carry the prefix too.
            target = _relative_name(member.linkname, prefix)
            if target is None:
                raise InvalidInput(f"archive member {member.name!r} is a hard link to a directory")
            renamed = renamed.replace(linkname=target, deep=False)
        try:
            return tarfile.data_filter(renamed, path)
        except tarfile.FilterError as error:
            raise InvalidInput(f"unsafe archive member {member.name!r}: {error}") from None

    return accept


def _relative_name(name: str, prefix: str) -> str | None:
    """`name` relative to `prefix/`, None for `prefix` itself; InvalidInput if unsafe."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInput(f"unsafe archive member {name!r}: absolute, or contains '..'")
    parts = [part for part in path.parts if part != "."]
    if not parts or parts[0] != prefix:
        raise InvalidInput(f"archive member {name!r} lies outside {prefix}/")
    if len(parts) == 1:
        return None
    return "/".join(parts[1:])


def _remove_partial(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def write_tree_tar(trees: Mapping[str, Path], out: BinaryIO) -> None:
    """Write a tar of host folders to `out`, each placed at its absolute container path.

    Entries belong to root and are readable by everyone (files keep only
    their executable bit), so any container user can read them. Only regular
    files and directories are allowed: InvalidInput names anything else.
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for target, source in trees.items():
            top = _archive_path(target)
            if not source.is_dir():
                raise InvalidInput(f"{source} is not a directory")
            source = source.resolve()
            # The target's own folders, so that they exist with sane modes.
            for depth in range(1, len(top.parts) + 1):
                _add_entry(archive, source, "/".join(top.parts[:depth]))
            for folder, subdirs, files in os.walk(source):
                subdirs.sort()
                base = Path(folder)
                for name in [*subdirs, *sorted(files)]:
                    path = base / name
                    _add_entry(archive, path, str(top / path.relative_to(source)))


def _archive_path(target: str) -> PurePosixPath:
    path = PurePosixPath(target)
    if not path.is_absolute() or ".." in path.parts or len(path.parts) < 2:
        raise InvalidInput(f"container path {target!r} must be absolute, below / and without '..'")
    return path.relative_to("/")


def _add_entry(archive: tarfile.TarFile, path: Path, member: str) -> None:
    info = os.lstat(path)
    entry = tarfile.TarInfo(member)
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = "root"
    entry.mtime = int(info.st_mtime)
    if stat.S_ISDIR(info.st_mode):
        entry.type = tarfile.DIRTYPE
        entry.mode = 0o755
        archive.addfile(entry)
        return
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{path} is not a regular file or directory (links are not allowed)")
    entry.mode = 0o755 if info.st_mode & 0o111 else 0o644
    entry.size = info.st_size
    with path.open("rb") as content:
        archive.addfile(entry, content)


def write_file_atomically(chunks: Iterable[bytes], dest: Path) -> int:
    """Stream `chunks` into `dest`: a temporary sibling, fsynced, then renamed. Returns the size.

    A crash or an error leaves `dest` as it was (absent or the old file).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"
    )
    size = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, dest)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return size


def write_data_image(files: Iterable[Path], dest: Path) -> int:
    """Write a data image archive (`docker save` format) with `files` under /data; its size.

    Needs no container engine: the image has one layer holding `/data` (each
    file, or each folder's contents, by name), and a config any engine loads
    (`docker load`). Written atomically: `dest` appears only when complete.
    """
    sources = [Path(f) for f in files]
    if not sources:
        raise InvalidInput("give at least one file or folder to put under /data")
    names = [source.name for source in sources]
    if len(set(names)) != len(names):
        raise InvalidInput(f"two of the files have the same name: {sorted(names)}")
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as work:
        staging = Path(work) / "data"
        staging.mkdir()
        for source in sources:
            if source.is_dir():
                shutil.copytree(source, staging / source.name, symlinks=True)
            elif source.is_file():
                shutil.copy2(source, staging / source.name, follow_symlinks=False)
            else:
                raise InvalidInput(f"{source}: no such file or folder")
        layer = Path(work) / "layer.tar"
        with layer.open("wb") as out:
            write_tree_tar({"/data": staging}, out)
        diff_id = _sha256_of(layer)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
            },
            sort_keys=True,
        ).encode()
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        manifest = json.dumps(
            [{"Config": config_name, "RepoTags": None, "Layers": [f"{diff_id}/layer.tar"]}]
        ).encode()
        partial = Path(work) / "image.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            archive.add(layer, arcname=f"{diff_id}/layer.tar")
            for name, data in ((config_name, config), ("manifest.json", manifest)):
                entry = tarfile.TarInfo(name)
                entry.size = len(data)
                entry.mode = 0o644
                archive.addfile(entry, io.BytesIO(data))
        os.replace(partial, dest)
    return dest.stat().st_size


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()
