"""The host side of a step's output directories: create, measure, discard.

The container writes into these through bind mounts, so they must be
writable by the (non-root) container user, and what it left there is
untrusted until measured: only regular files and directories count as
output, and their total size is bounded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mahiru.errors import Conflict

logger = logging.getLogger("mahiru.runtime")

#: How much of a text the step chose (a file name, an engine message) the site logs.
LOGGED_CHARS = 256


@dataclass(frozen=True, slots=True)
class OutputCheck:
    """What a step left in its output directories: total bytes, and the first problem if any."""

    total_bytes: int
    problem: str | None


def prepare_output_dirs(
    root: Path, names: Sequence[str], owner: tuple[int, int] | None
) -> dict[str, Path]:
    """Create an empty directory `root/<name>` per output, writable by the container user.

    With `owner` (we are root and container ids map 1:1 to host ids) each
    directory is given to that uid:gid with mode 0700; without it (rootless
    engines, user-namespace remapping) the only portable way is mode 0777,
    so keep `root` itself private. An existing non-empty directory is a
    Conflict: it may be the result of an earlier attempt nobody has collected.
    """
    root.mkdir(parents=True, exist_ok=True)
    dirs: dict[str, Path] = {}
    for name in names:
        path = root / name
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise Conflict(f"output directory {path} already exists and is not empty")
    try:
        for name in names:
            path = root / name
            path.mkdir(exist_ok=True)
            dirs[name] = path
            if owner is not None:
                os.chown(path, *owner)
                path.chmod(0o700)
            else:
                path.chmod(0o777)
    except BaseException:
        discard_outputs(dirs.values())
        raise
    return dirs


def measure_outputs(dirs: Mapping[str, Path], max_bytes: int) -> OutputCheck:
    """Sum the sizes of the output files, and count what is not a file or a folder.

    Symbolic links, devices, sockets and pipes are refused: once copied into
    a data image they would point at, or be, something the step did not
    compute. Links are never followed. The problem is a fixed text with
    counts only: the names are the step's own choice (they can carry its
    data), so they go to this site's log, cut short, and nowhere else.
    """
    total = 0
    for name, top in dirs.items():
        odd = 0
        pending = [top]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    mode = entry.stat(follow_symlinks=False).st_mode
                    if stat.S_ISDIR(mode):
                        pending.append(Path(entry.path))
                    elif stat.S_ISREG(mode):
                        total += entry.stat(follow_symlinks=False).st_size
                    else:
                        odd += 1
                        if odd == 1:
                            where = os.fsencode(os.path.relpath(entry.path, top))
                            logger.warning(
                                "step output holds an entry that is not a file or folder",
                                extra={
                                    "output": name,
                                    "entry_hex": cut(where.hex()),
                                    "mode": oct(stat.S_IFMT(mode)),
                                },
                            )
                    if total > max_bytes:
                        return OutputCheck(
                            total,
                            f"the step's output exceeds its limit of {max_bytes} bytes",
                        )
        if odd:
            return OutputCheck(
                total,
                f"output {name} holds {odd} entries that are not regular files or directories"
                " (links, pipes, sockets and devices are not output)",
            )
    return OutputCheck(total, None)


def judge_outputs(
    dirs: Mapping[str, Path], max_bytes: int, *, stopped_for_size: bool
) -> tuple[OutputCheck, str | None]:
    """Measure a finished step's outputs; the check, and why they are over the limit if they
    are (`stopped_for_size`: the runner stopped the step while it ran for its output's size)."""
    check = measure_outputs(dirs, max_bytes)
    if stopped_for_size:
        return check, (
            f"the step's output exceeds its limit of {max_bytes} bytes"
            " (the step was stopped while it ran)"
        )
    if check.total_bytes > max_bytes:
        return check, check.problem
    return check, None


def cut(text: str, limit: int = LOGGED_CHARS) -> str:
    """`text` cut to `limit` characters for the site's log, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def discard_outputs(dirs: Iterable[Path]) -> None:
    """Delete output directories and everything in them; missing ones are fine."""
    for path in dirs:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
