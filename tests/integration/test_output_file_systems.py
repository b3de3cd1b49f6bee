"""Output file systems copied from one formatted per size: as fresh and as bounded as a
formatted one (needs root and loop devices, as the site's own output spaces do)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from mahiru.runtime import space
from mahiru.runtime.space import MIB, EmptyFileSystems, bounded_folder, margin_bytes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0
        or shutil.which("mkfs.ext4") is None
        or not Path("/dev/loop-control").exists(),
        reason="needs root, mkfs.ext4 and loop devices",
    ),
]

LIMIT = 8 * MIB


def _fill(folder: Path) -> int:
    """Write 1 MiB chunks into `folder` until the file system is full; bytes written."""
    written = 0
    with (folder / "flood").open("wb") as file:
        try:
            while written < 4 * (LIMIT + margin_bytes(LIMIT)):
                file.write(b"x" * MIB)
                file.flush()
                written += MIB
        except OSError as error:
            assert error.errno == errno.ENOSPC
            return written
    raise AssertionError(f"wrote {written} bytes without running out of room")


def test_the_second_space_of_a_size_is_copied_not_formatted_and_still_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mkfs.ext4 runs for the first output space of a size only; each later one is a
    copy that mounts empty and refuses writes past the limit plus the margin."""
    commands: list[str] = []
    run = space._run

    def recorded(*command: str) -> None:
        commands.append(command[0])
        run(*command)

    monkeypatch.setattr(space, "_run", recorded)
    file_systems = EmptyFileSystems()
    for attempt in range(3):
        folder = tmp_path / f"step{attempt}" / "outputs"
        with bounded_folder(folder, LIMIT, file_systems) as bounded:
            assert bounded
            assert list(folder.iterdir()) == []
            written = _fill(folder)
            assert LIMIT <= written <= LIMIT + margin_bytes(LIMIT)
        assert not folder.exists()
        assert not folder.with_name("outputs.fs").exists()
    assert commands.count("mkfs.ext4") == 1
    assert commands.count("mount") == 3
