"""Scenario asset archives are rebuilt when their sources change, and kept otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from mahiru.runtime import DockerRuntime
from mahiru.runtime.assets import build_scenario_assets, sources_digest


@pytest.mark.e2e
@pytest.mark.serial  # moves the assets' image tags, which every site loading an archive shares
def test_archives_are_kept_until_their_sources_change(
    container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """A second build keeps the archives; a stale stamp makes that asset rebuild."""
    archives = build_scenario_assets(container_runtime, tmp_path)
    minmax = archives["minmax"]
    assert (tmp_path / "minmax.sources").read_text().strip() == sources_digest()
    built = {name: path.stat().st_mtime_ns for name, path in archives.items()}
    build_scenario_assets(container_runtime, tmp_path)
    assert {name: path.stat().st_mtime_ns for name, path in archives.items()} == built
    (tmp_path / "minmax.sources").write_text("0" * 64 + "\n")
    build_scenario_assets(container_runtime, tmp_path)
    assert minmax.stat().st_mtime_ns != built["minmax"]
    assert archives["output-base"].stat().st_mtime_ns == built["output-base"]
