"""docs/reviews.md, "For data owners": its rule parses as the rule it describes, and
every command it shows is one `mahiru` has, with options it takes."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import yaml

from mahiru.cli.main import cli
from mahiru.policy.review_checks import MinCount
from mahiru.policy.rules import ReleaseReviewedBy, rule_from_dict

SECTION = (
    (Path(__file__).resolve().parents[2] / "docs" / "reviews.md")
    .read_text()
    .split("## For data owners: the review queue", 1)[1]
    .split("\n## ", 1)[0]
)


def _blocks(kind: str) -> list[str]:
    return [part.split("```", 1)[0] for part in SECTION.split(f"```{kind}\n")[1:]]


def test_the_rule_of_the_data_owners_section_parses() -> None:
    (block,) = _blocks("yaml")
    (rule,) = [rule_from_dict(data) for data in yaml.safe_load(block)]
    assert isinstance(rule, ReleaseReviewedBy)
    assert rule.checks.min_count == MinCount("n", 10)


def test_every_command_shown_is_a_command_with_those_options() -> None:
    lines = [line for block in _blocks("console") for line in block.splitlines() if line]
    assert len(lines) == 6
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "mahiru"
        context = click.Context(cli)
        command: click.Command | None = cli
        args = words[1:]
        while isinstance(command, click.Group):
            command = command.get_command(context, args[0])
            args = args[1:]
        assert command is not None, line
        known = {opt for param in command.params for opt in param.opts}
        assert {word for word in args if word.startswith("--")} <= known, line
