"""Every command's --help: an example, and units where a number needs one."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mahiru.cli.main import cli


def _leaves(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command under `group` (imported, for the lazy ones), as its path of names."""
    found: list[tuple[str, ...]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            found += _leaves(command, (*path, name))
        else:
            found.append((*path, name))
    return found


COMMANDS = _leaves(cli)


def test_there_are_commands_to_check() -> None:
    assert ("jobs", "logs") in COMMANDS and ("completion",) in COMMANDS and len(COMMANDS) > 30


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_shows_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert "mahiru " in result.output.split("Example", 1)[1]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_a_timeout_says_its_unit(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    for line in result.output.splitlines():
        if line.strip().startswith("--timeout"):
            assert "SECONDS" in line or "seconds" in result.output.lower(), line


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    assert "_MAHIRU_COMPLETE" in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_the_help_text_is_dedented_like_its_summary(path: tuple[str, ...]) -> None:
    """Docstring lines keep their own indentation only, not the source code's."""
    result = CliRunner().invoke(cli, [*path, "--help"])
    description = result.output.split("\n\n", 1)[1].split("Options:", 1)[0]
    assert not [line for line in description.splitlines() if line.startswith("        ")]
