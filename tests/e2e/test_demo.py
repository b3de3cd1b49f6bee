"""`mahiru demo`: the compute-to-data scenario end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mahiru.runtime import DockerRuntime

MAHIRU = str(Path(sys.executable).parent / "mahiru")


@pytest.mark.e2e
def test_demo_runs_the_step_at_site2_and_prints_the_result(
    container_runtime: DockerRuntime, scenario_archives: dict[str, Path], tmp_path: Path
) -> None:
    """The demo plans the step at site2, runs it in a container, and gets exactly [1, 34]."""
    assets = next(iter(scenario_archives.values())).parent
    result = subprocess.run(
        [MAHIRU, "demo", "--workdir", str(tmp_path / "work"), "--assets", str(assets)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "plan: step compute runs at site:party2.mahiru.example.org:site2" in out
    assert "compute" in out and "succeeded" in out
    assert "[1, 34]" in out
    data = json.loads((tmp_path / "work" / "result" / "data.json").read_text())
    assert data == [1, 34]
    # Nothing keeps running after the demo: the service processes are gone.
    leftovers = subprocess.run(
        ["pgrep", "-f", f"serve .* --config {tmp_path}"], capture_output=True, text=True
    )
    assert leftovers.stdout == ""


@pytest.mark.e2e
def test_demo_without_engine_says_how_to_get_one(tmp_path: Path) -> None:
    """With no engine reachable the demo exits 4 with a hint, not a traceback."""
    result = subprocess.run(
        [MAHIRU, "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 4
    assert "no container engine answers" in result.stderr
    assert "Traceback" not in result.stderr
