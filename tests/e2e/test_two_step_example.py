"""examples/two_step, run as its README says against a network like the demo's: step 1 at
site2 (where the data is), its output carried to site2's peer site1 for step 2, and the
result fetched."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support.guides import demo_like_network, run_shell, service_logs, shell_blocks

from mahiru.runtime import DockerRuntime

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
README = EXAMPLES / "two_step" / "README.md"
IMAGES = ("mahiru-example/stats:1", "mahiru-example/report:1")


def test_the_readme_has_the_whole_sequence() -> None:
    """The run below builds, uploads, adds both parties' rules and fetches a result."""
    script = shell_blocks(README)
    for command in (
        "docker build",
        "docker save",
        "mahiru assets upload",
        "mahiru rules add mine-rules-party1.yaml",
        "mahiru --profile party2-admin rules add mine-rules-party2.yaml",
        "mahiru jobs submit mine-job.yaml",
        "mahiru jobs result",
    ):
        assert command in script, command


def test_the_two_step_example_runs_across_both_sites(
    container_runtime: DockerRuntime, scenario_archives: dict[str, Path], tmp_path: Path
) -> None:
    """The README's commands plan `aggregate` at site2 and `summarise` at site1, and the
    fetched report is the one the README shows."""
    folder = tmp_path / "examples"
    # Without what an earlier run of the README in the repository may have left there.
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("mine-*", "*.tar", "result"))
    work = folder / "two_step"
    try:
        with demo_like_network(tmp_path, scenario_archives) as network:
            code, output = run_shell(shell_blocks(README), work, network.environment(), timeout=420)
            assert code == 0, output[-4000:] + service_logs(network.net)
            p1 = network.namespaces["party1.mahiru.example.org"]
            p2 = network.namespaces["party2.mahiru.example.org"]
            held = {}
            for site in network.net.sites:
                with network.net.site_client(site) as client:
                    held[site.name] = {str(r.asset.id) for r in client.list_assets()}
    finally:
        subprocess.run(["docker", "image", "rm", *IMAGES], capture_output=True, check=False)
    assert f"aggregate: site:{p2}:site2" in output
    assert f"summarise: site:{p1}:site1" in output
    report = json.loads((work / "result" / "report" / "report.json").read_text())
    assert report == {"count": 9, "mean": 9.78, "stdev": 10.59}
    assert '`{"count": 9, "mean": 9.78, "stdev": 10.59}`' in README.read_text()
    # Each site made and holds its step's result; the data set stayed at site2.
    (aggregates,) = (item for item in held["site2"] if item.startswith("result:"))
    (report_id,) = (item for item in held["site1"] if item.startswith("result:"))
    assert aggregates != report_id
    data = f"asset:{p2}:input:{p2}:site2"
    assert data in held["site2"] and data not in held["site1"], held
