"""The layers point one way: the import contracts in pyproject.toml hold, with no exceptions."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def test_the_contracts_list_no_exceptions() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = config["contracts"]
    assert len(contracts) >= 6
    for contract in contracts:
        assert "ignore_imports" not in contract, contract["name"]
        if contract.get("allow_indirect_imports") is True:
            # Only the clock contract may: services reach time and uuid through
            # mahiru.clock, the one module that reads them.
            assert set(contract["forbidden_modules"]) <= {"time", "uuid"}, contract["name"]


def test_every_import_contract_is_kept() -> None:
    done = subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
