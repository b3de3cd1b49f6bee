"""Every script in benchmarks/ runs to the end at a tiny size, so a benchmark that breaks
fails the tests instead of rotting until someone next measures.

Each runs once with `--quick` in a process of its own. What it prints is
checked for figures, never for how fast: the machine is shared, and the
timings a quick run gives mean nothing. The scripts that build the scenario's
asset archives are handed the ones this test run already built (`--assets`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))
#: Far more than any quick run takes (the slowest, load.py, about 25 s on a busy machine).
TIMEOUT_SECONDS = 240
#: A figure: a number, as every benchmark prints its measurements.
FIGURE = re.compile(r"\d+(\.\d+)?")

pytestmark = pytest.mark.e2e


def test_every_benchmark_is_found() -> None:
    """The parametrisation below sees the benchmarks (a moved folder would skip them all)."""
    assert {"transfer.py", "cli_startup.py", "planner.py"} <= {path.name for path in BENCHMARKS}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.name)
def test_benchmark_runs_at_a_tiny_size(script: Path, request: pytest.FixtureRequest) -> None:
    """`benchmarks/<script> --quick` exits 0 and prints figures."""
    command = [sys.executable, str(script), "--quick"]
    if "build_scenario_assets" in script.read_text():
        archives: dict[str, Path] = request.getfixturevalue("scenario_archives")
        (folder,) = {path.parent for path in archives.values()}
        command += ["--assets", str(folder)]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script.name} --quick still ran after {TIMEOUT_SECONDS} s")
    report = (
        f"{' '.join(command[1:])}:\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    )
    assert done.returncode == 0, report
    assert FIGURE.search(done.stdout), f"no figures printed\n{report}"
