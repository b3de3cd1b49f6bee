"""The shell blocks of docs/manual-setup.md, run in order, set up a network and run a job."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.servers import free_port

from mahiru.runtime.assets import MINMAX_ASSET

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "manual-setup.md"
BIN = Path(sys.executable).parent


def _script() -> str:
    return "\n".join(re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.S))


def test_no_block_would_end_an_interactive_shell() -> None:
    """Blocks are pasted into people's shells: no `set -e`, no `exit`."""
    for line in _script().splitlines():
        assert not line.startswith(("set -e", "exit")), line


def test_the_manual_has_the_whole_sequence() -> None:
    """The shell blocks go from certificates to replication (so the run below is not vacuous)."""
    script = _script()
    for command in (
        "mahiru certs ca",
        "mahiru serve registry",
        "mahiru register party",
        "mahiru register site",
        "mahiru serve site",
        "mahiru assets upload",
        "mahiru rules add",
        "mahiru rules list --replicated",
        "jobs submit",
        "jobs wait",
        "jobs result",
    ):
        assert command in script


def test_the_manual_setup_runs(tmp_path: Path, scenario_archives: dict[str, Path]) -> None:
    """Every command works as written, through to the job's result; the services are
    stopped at the end, whatever happens."""
    script = tmp_path / "manual.sh"
    script.write_text("set -eu\n" + _script())
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAHIRU_")}
    env = {
        **clean,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MINMAX": str(scenario_archives[MINMAX_ASSET]),
    }
    ports: set[int] = set()
    while len(ports) < 3:  # three distinct ports that were free a moment ago
        ports.add(free_port())
    names = ("REGISTRY_PORT", "SITE1_PORT", "SITE2_PORT")
    for name, port in zip(names, sorted(ports), strict=True):
        env[name] = str(port)
    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    finally:
        for pid_file in tmp_path.glob("*.pid"):
            pid = int(pid_file.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    logs = "".join(log.read_text()[-2000:] for log in tmp_path.glob("*.log"))
    assert process.returncode == 0, output[-4000:] + logs
    assert "stores only rules of party:p1.example.org:p1" in output
    assert "asset:p1.example.org:data1:p1.example.org:site1" in output
    assert "compute: site:p2.example.org:site2" in output
    assert (tmp_path / "result" / "minmax" / "data.json").read_text().split() == ["[1,", "9]"]
