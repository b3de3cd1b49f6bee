"""Room for a step's outputs that cannot grow past its limit, and a watch on it.

A step writes its outputs onto the host, so its output limit must hold while
it runs, not only once it has exited. Two layers do that:

- `bounded_folder` mounts a fresh ext4 file system, in a sparse file of the
  limit plus `margin_bytes`, at the outputs folder: writes beyond it fail
  with "no space left", and the host's disk never gains more than that file
  can hold. It needs root and loop devices; where the host has neither (some
  containers), it logs why once and the folder is an ordinary one. An empty
  file system of one size is the same bytes every time (under 100 KiB of them
  in a sparse file), so `EmptyFileSystems` formats one per size once and
  writes a copy for each step, instead of running `mkfs.ext4` per step.
- `OutputWatch` measures the outputs while the step runs and stops its
  container as soon as they pass the limit, so a full file system (or, in
  the fallback, a fast writer) ends the step at once with that reason.

The step's /tmp is a tmpfs counted against its memory limit, and its log is
capped by the engine (10 MiB), so neither can fill the host's disk either.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from mahiru.runtime.outputs import measure_outputs

logger = logging.getLogger("mahiru.runtime")

MIB = 1024 * 1024
#: What the bounded file system holds beyond the limit (file system metadata, and
#: room to see that the limit was passed): the host gains at most limit + margin.
MARGIN_FRACTION = 1 / 16
MIN_MARGIN_BYTES = 8 * MIB
#: How often the watch measures the outputs of a running step (seconds).
WATCH_INTERVAL = 0.2
_IMAGE_SUFFIX = ".fs"

_fallback_logged = threading.Event()


def margin_bytes(max_bytes: int) -> int:
    """How much more than `max_bytes` a step's outputs may take on the host, at most."""
    return max(int(max_bytes * MARGIN_FRACTION), MIN_MARGIN_BYTES)


#: The most bytes of an empty file system's image kept to copy (a host whose file
#: system does not report holes shows the whole image as data: then it is formatted).
MAX_TEMPLATE_BYTES = 4 * MIB


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def _format(image: Path, size: int) -> None:
    """Make `image` a sparse file of `size` bytes holding an empty ext4 file system."""
    with image.open("wb") as file:
        file.truncate(size)
    # 4 KiB blocks, an inode per 16 KiB, no journal, no reserve: under 2 %
    # of the room goes to the file system itself, so the outputs can pass
    # the limit (and be seen doing so) before the room runs out.
    _run(
        "mkfs.ext4", "-q", "-F", "-b", "4096", "-i", "16384", "-m", "0",
        "-O", "^has_journal,^resize_inode", "-E", "lazy_itable_init=1,nodiscard",
        str(image),
    )  # fmt: skip


def _data_extents(image: Path) -> list[tuple[int, bytes]] | None:
    """The parts of a sparse file that hold data, with their offsets; None if they come
    to more than MAX_TEMPLATE_BYTES (or the file system cannot tell holes from data)."""
    extents: list[tuple[int, bytes]] = []
    total = 0
    with image.open("rb") as file:
        fd = file.fileno()
        size = os.fstat(fd).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            total += end - start
            if total > MAX_TEMPLATE_BYTES:
                return None
            extents.append((start, os.pread(fd, end - start, start)))
            offset = end
    return extents


class EmptyFileSystems:
    """Images of empty output file systems, formatted once per size and copied after."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # size -> the data of the formatted image (None: copying does not pay here)
        self._templates: dict[int, list[tuple[int, bytes]] | None] = {}

    def make(self, image: Path, size: int) -> None:
        """Make `image` a sparse file of `size` bytes holding a new, empty ext4 file system."""
        with self._lock:
            known = size in self._templates
            template = self._templates.get(size)
        if template is None:
            _format(image, size)
            if not known:
                extents = _data_extents(image)
                with self._lock:
                    self._templates[size] = extents
            return
        fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            for offset, data in template:
                os.pwrite(fd, data, offset)
        finally:
            os.close(fd)


@contextlib.contextmanager
def bounded_folder(
    path: Path, max_bytes: int, file_systems: EmptyFileSystems | None = None
) -> Iterator[bool]:
    """An empty folder at `path` whose contents cannot pass `max_bytes` plus the margin.

    Yields whether the bound holds by construction (a mounted file system);
    on leaving, the file system is unmounted and its file deleted, whatever
    is in it. `path` must not exist yet. The empty file system comes from
    `file_systems` (formatted for this step without one).
    """
    path.mkdir(parents=True)
    image = path.with_name(path.name + _IMAGE_SUFFIX)
    mounted = False
    try:
        try:
            size = max_bytes + margin_bytes(max_bytes)
            if file_systems is None:
                _format(image, size)
            else:
                file_systems.make(image, size)
            _run("mount", "-o", "loop,nosuid,nodev,noexec", str(image), str(path))
            mounted = True
            (path / "lost+found").rmdir()
        except (OSError, subprocess.SubprocessError) as error:
            if mounted:
                raise
            image.unlink(missing_ok=True)
            if not _fallback_logged.is_set():
                _fallback_logged.set()
                detail = (
                    error.stderr.decode(errors="replace").strip()
                    if isinstance(error, subprocess.CalledProcessError) and error.stderr
                    else str(error)
                )
                logger.warning(
                    "cannot mount a size-bounded file system for step outputs (%s);"
                    " outputs are only watched while steps run",
                    detail,
                )
        yield mounted
    finally:
        if mounted:
            unmount(path)
        shutil.rmtree(path, ignore_errors=True)
        image.unlink(missing_ok=True)


def unmount(path: Path) -> None:
    """Unmount a step's output file system (lazily, if something still holds it)."""
    try:
        _run("umount", str(path))
    except (OSError, subprocess.SubprocessError):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _run("umount", "-l", str(path))


def unmount_below(root: Path) -> int:
    """Unmount every file system mounted below `root` (left by a crash); how many."""
    prefix = str(root.resolve()) + os.sep
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return 0
    points = [
        line.split()[1].encode().decode("unicode_escape") for line in lines if len(line.split()) > 1
    ]
    stale = sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)
    for point in stale:
        unmount(Path(point))
    for leftover in root.rglob(f"*{_IMAGE_SUFFIX}") if root.is_dir() else ():
        leftover.unlink(missing_ok=True)
    return len(stale)


class OutputWatch:
    """Measures a running step's outputs and calls `stop` once they pass `max_bytes`."""

    def __init__(self, dirs: Mapping[str, Path], max_bytes: int, stop: Callable[[], None]) -> None:
        self._dirs = dict(dirs)
        self._max_bytes = max_bytes
        self._stop = stop
        self._done = threading.Event()
        self.exceeded = False
        self._thread = threading.Thread(target=self._watch, name="output-watch", daemon=True)

    def __enter__(self) -> OutputWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(WATCH_INTERVAL):
            try:
                total = measure_outputs(self._dirs, self._max_bytes).total_bytes
            except OSError:
                continue  # a file vanished while it was measured: measure again
            if total > self._max_bytes:
                self.exceeded = True
                logger.warning("step output passed its limit; stopping the step")
                self._stop()
                return
