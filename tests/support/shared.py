"""What the pytest-xdist workers of one test run share: a folder, and locks in it.

Session fixtures that build something costly (images, archives) build it
once per run, under a lock in the run's folder, instead of once per worker.
Without xdist the session's own base folder plays that part. `make test` runs
pytest twice (the parallel pass, then the serial one) and gives both the same
folder in MAHIRU_TEST_RUN_DIR, so what the first pass built the second finds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

#: A folder shared by several pytest runs (made and removed by whoever sets it).
RUN_DIR_ENV = "MAHIRU_TEST_RUN_DIR"


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all workers of this test run share (MAHIRU_TEST_RUN_DIR, if set)."""
    given = os.environ.get(RUN_DIR_ENV)
    if given:
        return Path(given)
    base = tmp_path_factory.getbasetemp()
    # xdist gives each worker a base folder inside the controller's.
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@contextmanager
def run_lock(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """Hold the run-wide lock `name` (one worker at a time); yields the run's folder `name`."""
    folder = run_folder(tmp_path_factory) / name
    with FileLock(folder.with_name(f"{name}.lock")):
        yield folder


#: The file in which the workers of a run note the processes they SIGKILL (set per run).
KILLED_FILE_ENV = "MAHIRU_TEST_KILLED_PIDS"
#: The processes this process SIGKILLed.
_KILLED_HERE: set[int] = set()


def note_kill(pid: int) -> None:
    """Note that this process is about to SIGKILL `pid` (before it does): what that
    process leaves behind, its scratch containers, is this process's to account for."""
    _KILLED_HERE.add(pid)
    path = os.environ.get(KILLED_FILE_ENV)
    if path:
        with open(path, "a", encoding="ascii") as noted:
            noted.write(f"{pid}\n")  # one short write: appended whole


def killed_elsewhere() -> set[int]:
    """The processes other workers of the run SIGKILLed: their leftovers are theirs."""
    path = os.environ.get(KILLED_FILE_ENV)
    try:
        noted = Path(path).read_text(encoding="ascii").split() if path else []
    except FileNotFoundError:
        noted = []
    return {int(pid) for pid in noted} - _KILLED_HERE
