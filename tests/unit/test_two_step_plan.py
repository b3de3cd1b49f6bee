"""examples/two_step planned offline: with the demo's rules and both parties' additions,
step 1 runs at site2 and step 2 at site1; without any one of the additions, no plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TWO_STEP = EXAMPLES / "two_step"
MAHIRU = str(Path(sys.executable).parent / "mahiru")
SITE1 = "site:party1.mahiru.example.org:site1"
SITE2 = "site:party2.mahiru.example.org:site2"


def _rules(name: str) -> list[dict[str, str]]:
    rules: list[dict[str, str]] = yaml.safe_load(Path(name).read_text())["rules"]
    return rules


DEMO_RULES = _rules(str(EXAMPLES / "compute_to_data" / "rules.yaml"))
ADDED = _rules(str(TWO_STEP / "rules-party1.yaml")) + _rules(str(TWO_STEP / "rules-party2.yaml"))


def _plan(tmp_path: Path, rules: list[dict[str, str]]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": rules}))
    sites = EXAMPLES / "compute_to_data" / "sites.yaml"
    command = ["plan", "--rules", path, "--sites", sites, "--job", TWO_STEP / "job.yaml", "--json"]
    return subprocess.run([MAHIRU, *map(str, command)], capture_output=True, text=True, timeout=60)


def test_the_steps_run_at_the_two_sites(tmp_path: Path) -> None:
    """aggregate runs where the data is (site2), summarise where report may be (site1)."""
    result = _plan(tmp_path, DEMO_RULES + ADDED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {"plan": {"aggregate": SITE2, "summarise": SITE1}}


@pytest.mark.parametrize("left_out", range(len(ADDED)), ids=lambda i: ADDED[i]["type"] + str(i))
def test_every_added_rule_is_needed(tmp_path: Path, left_out: int) -> None:
    """The README says why each rule is there: without it, policy permits no plan (exit 3)."""
    result = _plan(tmp_path, DEMO_RULES + ADDED[:left_out] + ADDED[left_out + 1 :])
    assert result.returncode == 3, result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["type"] == "PermissionDenied"
