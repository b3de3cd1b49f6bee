"""Validating a crate with roc-validator (in its own environment, offline) from a test.

`make crate-validator` makes `.venv-rocrate` with roc-validator; it cannot
share the project's environment (it pins an older `rich` than the project's
tools need). `tests/support/rocrate_offline.py` runs it there with the JSON-LD
contexts served from tests/standards/rocrate/.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR_PYTHON = ROOT / ".venv-rocrate" / "bin" / "python"
RUNNER = Path(__file__).with_name("rocrate_offline.py")


@dataclass(frozen=True)
class Validation:
    """What roc-validator found: every check it ran, and the issues."""

    checks: list[dict[str, Any]]
    issues: list[dict[str, Any]]

    def failed(self, severity: str) -> list[dict[str, Any]]:
        """The issues of one severity (REQUIRED, RECOMMENDED)."""
        return [issue for issue in self.issues if issue["severity"] == severity]

    def passed(self, severity: str) -> list[str]:
        """The ids and names of the checks of one severity that passed."""
        return [
            f"{check['id']} {check['name']}"
            for check in self.checks
            if check["severity"] == severity and check["passed"]
        ]


def validate_crate(crate: Path, profile: str, report: Path) -> Validation:
    """Validate the unpacked crate in `crate` against `profile`, down to RECOMMENDED."""
    if not VALIDATOR_PYTHON.exists():
        missing = "roc-validator is not installed: run `make crate-validator`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing)  # `make test` installs it: in CI a skip would hide it
        pytest.skip(missing)
    done = subprocess.run(
        [str(VALIDATOR_PYTHON), str(RUNNER), profile, str(crate), str(report)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(report.read_text())
    return Validation(data["checks"], data["issues"])
