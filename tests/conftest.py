"""The order in which pytest-xdist hands out test files (`make test`: `--dist loadfile`).

A worker takes the next file of the queue when it is done with one, so a long file
handed out last keeps its worker busy after the others have finished. The files
that take longest (measured with `--durations`-like timing of a whole `make test`)
go first, the slowest first; every other file keeps its place after them. Slurm's
files are spread: the cluster's module submits a job that holds a CPU for its first
minute, and two others want the whole node at some point.
"""

from __future__ import annotations

import pytest

#: The slowest files of a full run, slowest first (wall seconds on 2 cores, 4 workers).
SLOW_FILES = (
    "tests/integration/test_slurm_cluster.py",  # 87 s; its time-limit job, first
    "tests/integration/test_site_api.py",  # 122 s
    "tests/integration/test_site_replication.py",  # 118 s
    "tests/integration/test_fuzz.py",  # 111 s
    "tests/e2e/test_benchmarks_smoke.py",  # 94 s
    "tests/e2e/test_chaos.py",  # 85 s (65-125 s: its kills are random)
    "tests/e2e/test_jobs_faults.py",  # 81 s
    "tests/e2e/test_jobs.py",  # 79 s
    "tests/e2e/test_jobs_slurm.py",  # 103 s; after the cluster's time-limit job
    "tests/integration/test_registry.py",  # 63 s
    "tests/integration/test_site_cli.py",  # 62 s
    "tests/e2e/test_data_access.py",  # 55 s
    "tests/integration/test_bounded_callers.py",  # 54 s
    "tests/integration/test_site_workers.py",  # 53 s
    "tests/e2e/test_docs_manual.py",  # 47 s
    "tests/e2e/test_scenario_scripts.py",  # 46 s
    "tests/e2e/test_demo.py",  # 45 s
    "tests/e2e/test_jobs_chain.py",  # 40 s
    "tests/e2e/test_runner_contract.py",  # 40 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the tests of SLOW_FILES first, in that order; the rest keep theirs."""
    rank = {path: place for place, path in enumerate(SLOW_FILES)}
    last = len(SLOW_FILES)
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], last))
