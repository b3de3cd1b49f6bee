"""docs/first-compute-asset.md and docs/python-client.md, run as written against a network
like the demo's: the guide's shell blocks from a fresh folder to a fetched result, then the
Python client's example in the same folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.guides import (
    DemoLikeNetwork,
    demo_like_network,
    run_shell,
    service_logs,
    shell_blocks,
)

from mahiru.runtime import DockerRuntime

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "first-compute-asset.md"
CLIENT_DOC = ROOT / "docs" / "python-client.md"
IMAGE = "mahiru-guide/mean:1"


@dataclass(frozen=True)
class GuideRun:
    """The guide's network, the folder it ran in, and what the run printed."""

    network: DemoLikeNetwork
    folder: Path
    code: int
    output: str


@pytest.fixture(scope="module")
def guide_run(
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GuideRun]:
    """The guide's script, run once in an empty folder; the network stays up for the
    Python client's example."""
    root = tmp_path_factory.mktemp("guide")
    folder = root / "work"
    folder.mkdir()
    with demo_like_network(root, scenario_archives) as network:
        try:
            code, output = run_shell(
                shell_blocks(GUIDE), folder, network.environment(), timeout=420
            )
            yield GuideRun(network, folder, code, output)
        finally:
            subprocess.run(["docker", "image", "rm", IMAGE], capture_output=True, check=False)


def test_the_guide_has_the_whole_sequence() -> None:
    """The run below goes from a Dockerfile to a fetched result (so it is not vacuous)."""
    script = shell_blocks(GUIDE)
    for command in (
        "FROM mahiru-base:latest",
        "docker build",
        "docker save",
        "mahiru assets upload",
        "mahiru rules add",
        "mahiru --profile party2-admin rules add",
        "mahiru jobs submit",
        "mahiru jobs wait",
        "mahiru jobs result",
    ):
        assert command in script, command


def test_no_block_would_end_an_interactive_shell() -> None:
    """Blocks are pasted into people's shells: no `set -e`, no `exit`."""
    for line in shell_blocks(GUIDE).splitlines():
        assert not line.startswith(("set -e", "exit")), line


def test_the_guide_runs_from_a_dockerfile_to_the_result(guide_run: GuideRun) -> None:
    """Every command works as written; the step runs at site2, where the data is, and the
    fetched result is the one the guide shows, as is the local try-out's."""
    assert guide_run.code == 0, guide_run.output[-4000:] + service_logs(guide_run.network.net)
    p2 = guide_run.network.namespaces["party2.mahiru.example.org"]
    assert f"average: site:{p2}:site2" in guide_run.output
    assert '{"count": 3, "mean": 5.0}' in guide_run.output
    result = guide_run.folder / "result" / "mean" / "data.json"
    assert json.loads(result.read_text()) == {"count": 9, "mean": 9.78}
    shown = re.findall(r"It prints `(\{.*?\})`", GUIDE.read_text())
    assert [json.loads(text) for text in shown] == [
        {"count": 3, "mean": 5.0},
        {"count": 9, "mean": 9.78},
    ]


def _python_example() -> str:
    (block,) = re.findall(r"^```python\n(.*?)^```", CLIENT_DOC.read_text(), re.S | re.M)
    return block


def test_the_python_client_example_runs_the_guides_job(guide_run: GuideRun) -> None:
    """docs/python-client.md's example, run in the guide's folder with the same profile,
    submits the job, waits for it and writes the same result."""
    assert guide_run.code == 0, "the guide did not run; see the test above"
    script = guide_run.folder / "client_example.py"
    script.write_text(_python_example())
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=guide_run.folder,
        env=guide_run.network.environment(),
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout
    result = guide_run.folder / "python-result" / "data.json"
    assert json.loads(result.read_text()) == {"count": 9, "mean": 9.78}
