"""Every `console` example in README.md runs and prints exactly what it shows."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _examples() -> list[tuple[str, str, int]]:
    """(command, expected output, expected exit code) for each `$ ` line of console blocks."""
    text = (ROOT / "README.md").read_text()
    examples: list[tuple[str, str, int]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            code = 0
            exit_line = re.search(r"^\[exit (\d+)\]\n?\Z", output, re.M)
            if exit_line:
                code = int(exit_line.group(1))
                output = output[: exit_line.start()]
            examples.append((command, output, code))
    return examples


EXAMPLES = _examples()


def test_readme_has_examples() -> None:
    """The README shows the offline commands (so this test cannot pass vacuously)."""
    commands = [command for command, _, _ in EXAMPLES]
    assert any(c.startswith("mahiru plan") for c in commands)
    assert any(c.startswith("mahiru policy explain") for c in commands)


@pytest.mark.parametrize(
    ("command", "expected", "code"), EXAMPLES, ids=[e[0][:60] for e in EXAMPLES]
)
def test_readme_example(command: str, expected: str, code: int) -> None:
    """The command exits as shown and prints exactly the shown lines (stdout, then stderr)."""
    argv = shlex.split(command)
    argv[0] = str(BIN / argv[0])
    result = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == code, result.stderr
    assert result.stdout + result.stderr == expected
